"""Who may open what: every route x every role -> the status they get, refusals included.

The world of each test: `open` (published, every role may see it), `restricted` (published, `allowed_roles:
["admin"]`), `draft` (a draft, for admins only), one pending run of each, a completed run of `open` (`done`, one
that may be replayed), a run id that does not exist, and a
user of the role under test (signed in for pages, with a bearer token for the API). Anonymous callers are sent
to the sign-in page (302) by pages and get 401 from the API. Invisible workflows and runs answer 404, exactly
like missing ones; a role that lacks the capability gets 403 (before the loader looks, so a 403 never tells
that something exists).
"""
import pytest

from app.extensions import db
from app.services.workflows import load_definition
from app.vocabulary import Role
from tests.conftest import PASSWORD, csrf_token
from tests.factories import issue_api_token, make_run, steps_workflow

ANONYMOUS = "anonymous"
ROLES = [r.value for r in Role]
CALLERS = [*ROLES, ANONYMOUS]
RUNNERS = {Role.OPERATOR.value, Role.MANAGER.value, Role.ADMIN.value, Role.SUPPORT.value}  # RUN_WORKFLOW, CANCEL_RUN
EXPORTERS = RUNNERS  # EXPORT_DATA
APPROVERS = {Role.MANAGER.value, Role.ADMIN.value}  # APPROVE_STEP
REPLAYERS = {Role.MANAGER.value, Role.ADMIN.value, Role.SUPPORT.value}  # REPLAY_RUN
ADMIN = Role.ADMIN.value  # VIEW_DRAFTS: sees drafts and every restricted workflow
EDITORS = {Role.MANAGER.value, Role.ADMIN.value}  # UPDATE_WORKFLOW: tunes settings (managers: of published workflows)
AUTHORS = {ADMIN}  # AUTHOR_WORKFLOW, PUBLISH_WORKFLOW
MISSING_RUN = 999999
MISSING_VERSION = 2**63 - 2  # a whole number the URL takes, far beyond any version number


def each(status: int) -> dict[str, int]:
    """Every role gets `status`."""
    return dict.fromkeys(ROLES, status)


def only(allowed: set[str], status: int, others: int) -> dict[str, int]:
    """`status` for the roles in `allowed`, `others` for the rest."""
    return {role: status if role in allowed else others for role in ROLES}


def gated(capable: set[str], status: int) -> dict[str, int]:
    """A capability gate in front of an admin-only thing: 403 without the capability, 404 with it (the thing is
    hidden), `status` for admins."""
    return {role: status if role == ADMIN else 404 if role in capable else 403 for role in ROLES}


# (method, path, expected status per role); `{open}`, `{restricted}`, `{draft}` are the runs of those workflows.
# Anonymous callers are added below: 302 for pages (the sign-in page), 401 for the API.
PAGES = [
    ("GET", "/", each(302)),
    ("GET", "/login", each(200)),
    ("POST", "/login", each(401)),  # a wrong password, whoever asks
    ("POST", "/logout", each(302)),
    ("GET", "/account", each(200)),
    ("POST", "/account/password", each(422)),  # empty fields
    ("POST", "/account/sign-out-everywhere", each(302)),
    ("GET", "/workflows", each(200)),
    ("GET", "/workflows/open", each(200)),
    ("GET", "/workflows/restricted", only({ADMIN}, 200, 404)),
    ("GET", "/workflows/draft", only({ADMIN}, 200, 404)),
    ("GET", "/workflows/missing", each(404)),
    ("POST", "/workflows/open/runs", only(RUNNERS, 302, 403)),
    ("POST", "/workflows/restricted/runs", gated(RUNNERS, 302)),
    ("POST", "/workflows/draft/runs", gated(RUNNERS, 409)),  # admins see it, but a draft cannot run
    ("POST", "/workflows/missing/runs", only(RUNNERS, 404, 403)),
    ("GET", "/workflows/open/logs?q=key:INV-1", each(200)),
    ("GET", "/workflows/restricted/logs", only({ADMIN}, 200, 404)),
    ("GET", "/workflows/draft/logs", only({ADMIN}, 200, 404)),
    ("GET", "/workflows/open/errors.csv", only(EXPORTERS, 200, 403)),
    ("GET", "/workflows/restricted/errors.csv", gated(EXPORTERS, 200)),
    ("GET", "/runs", each(200)),
    ("GET", "/runs.csv", only(EXPORTERS, 200, 403)),
    ("GET", "/workflows/open/history", each(200)),
    ("GET", "/workflows/restricted/history", only({ADMIN}, 200, 404)),
    ("GET", "/workflows/draft/history", only({ADMIN}, 200, 404)),
    ("GET", "/workflows/open/history.csv", only(EXPORTERS, 200, 403)),
    ("GET", "/workflows/restricted/history.csv", gated(EXPORTERS, 200)),
    ("GET", "/runs/{open}", each(200)),
    ("GET", "/runs/{restricted}", only({ADMIN}, 200, 404)),
    ("GET", "/runs/{draft}", only({ADMIN}, 200, 404)),
    ("GET", f"/runs/{MISSING_RUN}", each(404)),
    # The runs are pending and have no log lines yet: a tail poll with nothing new answers an empty 204.
    ("GET", "/runs/{open}/log?after=0", each(204)),
    ("GET", "/runs/{restricted}/log?after=0", only({ADMIN}, 204, 404)),
    ("GET", "/runs/{open}/log.csv", only(EXPORTERS, 200, 403)),
    ("GET", "/runs/{restricted}/log.csv", gated(EXPORTERS, 200)),
    ("POST", "/runs/{open}/cancel", only(RUNNERS, 302, 403)),
    ("POST", "/runs/{restricted}/cancel", gated(RUNNERS, 302)),
    ("POST", f"/runs/{MISSING_RUN}/cancel", only(RUNNERS, 404, 403)),
    ("GET", "/approvals", only(APPROVERS, 200, 403)),
    # No decision in the form: the role is checked first (403), the run's visibility next (404), the form last (422).
    ("POST", "/runs/{open}/approval", only(APPROVERS, 422, 403)),
    ("POST", "/runs/{restricted}/approval", gated(APPROVERS, 422)),
    ("POST", f"/runs/{MISSING_RUN}/approval", only(APPROVERS, 404, 403)),
    # The runs are pending, not failed: those who may retry are told it cannot be retried (409).
    ("GET", "/runs/{open}/retry", only(RUNNERS, 409, 403)),
    ("POST", "/runs/{open}/retry", only(RUNNERS, 409, 403)),
    ("GET", "/runs/{restricted}/retry", gated(RUNNERS, 409)),
    ("POST", "/runs/{restricted}/retry", gated(RUNNERS, 409)),
    ("GET", f"/runs/{MISSING_RUN}/retry", only(RUNNERS, 404, 403)),
    ("POST", "/runs/{open}/steps/a/retry", only(RUNNERS, 409, 403)),
    # The Run dialog's parts answer htmx; a plain request is sent to the page that does the same.
    ("GET", "/workflows/open/run-dialog", only(RUNNERS, 302, 403)),
    ("GET", "/workflows/restricted/run-dialog", gated(RUNNERS, 302)),
    ("GET", "/runs/{open}/dialog", each(302)),
    ("GET", "/runs/{restricted}/dialog", only({ADMIN}, 302, 404)),
    ("POST", "/runs/{restricted}/steps/a/retry", gated(RUNNERS, 409)),
    # Replay: `{done}` is a completed run of `open`; the pending runs are still active (409).
    ("GET", "/runs/{done}/replay", only(REPLAYERS, 200, 403)),
    ("GET", "/runs/{open}/replay", only(REPLAYERS, 409, 403)),
    ("GET", "/runs/{restricted}/replay", gated(REPLAYERS, 409)),
    ("GET", f"/runs/{MISSING_RUN}/replay", only(REPLAYERS, 404, 403)),
    ("POST", "/runs/{done}/replay", only(REPLAYERS, 303, 403)),
    ("POST", "/runs/{open}/replay", only(REPLAYERS, 409, 403)),
    ("POST", "/runs/{restricted}/replay", gated(REPLAYERS, 409)),
    # The editor (E2): admins edit everything; managers open a published workflow's editor and change only its
    # settings (other sections' posts answer 403); other roles get 403, and 404 where they cannot see the workflow
    # (a draft, a restricted one). The posts carry no fields: admins get the form back with its errors (422), a
    # change that needs none is applied (303 back to the editor), and a save with nothing new is refused (409).
    ("GET", "/workflows/new", only({ADMIN}, 200, 403)),
    ("POST", "/workflows/new", only({ADMIN}, 422, 403)),
    ("GET", "/workflows/open/edit", only(EDITORS, 200, 403)),
    ("GET", "/workflows/open/edit?section=steps&step=a", only(EDITORS, 200, 403)),
    ("GET", "/workflows/restricted/edit", only({ADMIN}, 200, 404)),
    ("GET", "/workflows/draft/edit", only({ADMIN}, 200, 404)),
    ("GET", "/workflows/missing/edit", each(404)),
    ("POST", "/workflows/open/edit/configuration", only({ADMIN}, 422, 403)),
    ("POST", "/workflows/draft/edit/configuration", only({ADMIN}, 422, 404)),
    ("POST", "/workflows/open/edit/restrictions", only({ADMIN}, 303, 403)),
    ("POST", "/workflows/open/edit/settings", only(EDITORS, 422, 403)),
    ("POST", "/workflows/restricted/edit/settings", only({ADMIN}, 422, 404)),
    ("POST", "/workflows/draft/edit/settings", only({ADMIN}, 422, 404)),
    ("POST", "/workflows/open/edit/params", only({ADMIN}, 303, 403)),
    ("POST", "/workflows/open/edit/params/0", only({ADMIN}, 404, 403)),  # it has no parameters
    ("POST", "/workflows/open/edit/params/0/form", only({ADMIN}, 404, 403)),
    ("POST", "/workflows/open/edit/params/0/move", only({ADMIN}, 404, 403)),
    ("POST", "/workflows/open/edit/params/0/remove", only({ADMIN}, 404, 403)),
    ("POST", "/workflows/open/edit/steps", only({ADMIN}, 422, 403)),
    ("POST", "/workflows/draft/edit/steps", only({ADMIN}, 422, 404)),
    ("POST", "/workflows/open/edit/steps/a", only({ADMIN}, 422, 403)),
    ("POST", "/workflows/open/edit/steps/a/check", only({ADMIN}, 200, 403)),
    ("POST", "/workflows/open/edit/steps/a/move", only({ADMIN}, 303, 403)),
    ("POST", "/workflows/open/edit/steps/a/remove", only({ADMIN}, 303, 403)),
    ("POST", "/workflows/open/edit/json", only({ADMIN}, 422, 403)),
    ("POST", "/workflows/open/edit/save", only({ADMIN}, 409, 403)),
    ("POST", "/workflows/draft/edit/save", only({ADMIN}, 409, 404)),
    ("POST", "/workflows/open/edit/publish", only({ADMIN}, 409, 403)),
    ("GET", "/runs/{done}/compare/{open}", each(200)),
    # Authoring: drafts answer 404 to all but admins; the lists switch only for admins (others get the published).
    ("GET", "/workflows?state=drafts", each(200)),
    ("GET", "/workflows/open/versions", each(200)),
    ("GET", "/workflows/restricted/versions", only({ADMIN}, 200, 404)),
    ("GET", "/workflows/draft/versions", only({ADMIN}, 200, 404)),
    ("GET", "/workflows/open/versions/1", each(200)),
    ("GET", "/workflows/draft/versions/1", only({ADMIN}, 200, 404)),
    ("GET", "/workflows/open/versions/9", each(404)),
    ("GET", f"/workflows/open/versions/{MISSING_VERSION}", each(404)),  # beyond the number column, not a 500
    # Every workflow of the world has a pending run: restoring is refused (409) to those who may restore.
    ("GET", "/workflows/open/versions/1/restore", only(AUTHORS, 409, 403)),
    ("GET", "/workflows/draft/versions/1/restore", gated(AUTHORS, 409)),
    ("POST", "/workflows/open/versions/1/restore", only(AUTHORS, 409, 403)),
    ("POST", f"/workflows/open/versions/{MISSING_VERSION}/restore", only(AUTHORS, 404, 403)),
    ("POST", "/workflows/draft/versions/1/restore", gated(AUTHORS, 409)),
    ("GET", "/workflows/open/audit", each(200)),
    ("GET", "/workflows/draft/audit", only({ADMIN}, 200, 404)),
    ("POST", "/workflows/open/publish", only(AUTHORS, 409, 403)),  # v1 is live already
    ("POST", "/workflows/draft/publish", gated(AUTHORS, 303)),
    ("POST", "/workflows/open/disable", only(AUTHORS, 303, 403)),
    ("POST", "/workflows/draft/enable", gated(AUTHORS, 303)),
    ("POST", "/workflows/open/archive", only(AUTHORS, 303, 403)),
    ("POST", "/workflows/draft/archive", gated(AUTHORS, 303)),
    ("GET", "/workflows/open/clone", only(AUTHORS, 200, 403)),
    ("GET", "/workflows/draft/clone", gated(AUTHORS, 200)),
    ("POST", "/workflows/open/clone", only(AUTHORS, 422, 403)),  # no name in the form
    ("POST", "/workflows/draft/clone", gated(AUTHORS, 422)),
    ("GET", "/workflows/open/export", only(EXPORTERS, 200, 403)),
    ("GET", "/workflows/restricted/export", gated(EXPORTERS, 200)),
    ("GET", "/workflows/draft/export", gated(EXPORTERS, 200)),
    ("GET", "/runs/{done}/compare/{restricted}", only({ADMIN}, 200, 404)),
    ("GET", f"/runs/{{done}}/compare/{MISSING_RUN}", each(404)),
]
API = [
    ("GET", "/api/v1/openapi.json", each(200)),
    ("GET", "/api/v1/workflows", each(200)),
    ("POST", "/api/v1/workflows/open/runs", only(RUNNERS, 202, 403)),
    # The API loads first and checks the role second: a hidden workflow is 404 even to a viewer.
    ("POST", "/api/v1/workflows/restricted/runs", only({ADMIN}, 202, 404)),
    ("POST", "/api/v1/workflows/draft/runs", only({ADMIN}, 409, 404)),
    ("GET", "/api/v1/runs", each(200)),
    ("GET", "/api/v1/runs/{open}", each(200)),
    ("GET", "/api/v1/runs/{restricted}", only({ADMIN}, 200, 404)),
    ("GET", "/api/v1/runs/{draft}", only({ADMIN}, 200, 404)),
    ("GET", f"/api/v1/runs/{MISSING_RUN}", each(404)),
    ("POST", "/api/v1/runs/{open}/approval", only(APPROVERS, 422, 403)),
    ("POST", "/api/v1/runs/{restricted}/approval", only({ADMIN}, 422, 404)),
    ("POST", f"/api/v1/runs/{MISSING_RUN}/approval", each(404)),
    ("POST", "/api/v1/runs/{open}/retry", only(RUNNERS, 409, 403)),
    ("POST", "/api/v1/runs/{restricted}/retry", only({ADMIN}, 409, 404)),
    ("POST", f"/api/v1/runs/{MISSING_RUN}/retry", each(404)),
    ("POST", "/api/v1/runs/{open}/steps/a/retry", only(RUNNERS, 409, 403)),
    ("POST", "/api/v1/runs/{restricted}/steps/a/retry", only({ADMIN}, 409, 404)),
    ("POST", "/api/v1/runs/{open}/cancel", only(RUNNERS, 202, 403)),
    ("POST", "/api/v1/runs/{restricted}/cancel", only({ADMIN}, 202, 404)),
    ("POST", f"/api/v1/runs/{MISSING_RUN}/cancel", each(404)),
    ("POST", "/api/v1/runs/{done}/replay", only(REPLAYERS, 202, 403)),
    ("POST", "/api/v1/runs/{open}/replay", only(REPLAYERS, 409, 403)),
    ("POST", "/api/v1/runs/{restricted}/replay", only({ADMIN}, 409, 404)),
    ("POST", f"/api/v1/runs/{MISSING_RUN}/replay", each(404)),
    # Authoring: load first (404 for what the caller may not see, drafts above all), then the role (403), then the
    # body (an empty one is 422 where a definition is required).
    ("POST", "/api/v1/workflows", only(AUTHORS, 422, 403)),
    ("PUT", "/api/v1/workflows/open/definition", only(AUTHORS, 422, 403)),
    ("PUT", "/api/v1/workflows/draft/definition", only({ADMIN}, 422, 404)),
    ("PUT", "/api/v1/workflows/missing/definition", each(404)),
    ("POST", "/api/v1/workflows/open/publish", only(AUTHORS, 409, 403)),
    ("POST", "/api/v1/workflows/draft/publish", only({ADMIN}, 200, 404)),
    ("POST", "/api/v1/workflows/open/enable", only(AUTHORS, 200, 403)),
    ("POST", "/api/v1/workflows/open/disable", only(AUTHORS, 200, 403)),
    ("POST", "/api/v1/workflows/draft/disable", only({ADMIN}, 200, 404)),
    ("PUT", "/api/v1/workflows/open/settings", only(EDITORS, 200, 403)),  # {} changes nothing
    ("PUT", "/api/v1/workflows/restricted/settings", only({ADMIN}, 200, 404)),
    ("PUT", "/api/v1/workflows/draft/settings", only({ADMIN}, 200, 404)),
    ("GET", "/api/v1/workflows/open", each(200)),
    ("GET", "/api/v1/workflows/restricted", only({ADMIN}, 200, 404)),
    ("GET", "/api/v1/workflows/draft", only({ADMIN}, 200, 404)),
    ("GET", "/api/v1/workflows/missing", each(404)),
    ("GET", "/api/v1/workflows/open/versions", each(200)),
    ("GET", "/api/v1/workflows/restricted/versions", only({ADMIN}, 200, 404)),
    ("GET", "/api/v1/workflows/draft/versions", only({ADMIN}, 200, 404)),
    ("GET", "/api/v1/workflows/open/versions/1", each(200)),
    ("GET", "/api/v1/workflows/draft/versions/1", only({ADMIN}, 200, 404)),
    ("GET", "/api/v1/workflows/open/versions/9", each(404)),
    ("GET", f"/api/v1/workflows/open/versions/{MISSING_VERSION}", each(404)),
    ("POST", f"/api/v1/workflows/open/versions/{MISSING_VERSION}/restore", only(AUTHORS, 404, 403)),
    ("POST", "/api/v1/workflows/open/versions/1/restore", only(AUTHORS, 409, 403)),
    ("POST", "/api/v1/workflows/draft/versions/1/restore", only({ADMIN}, 409, 404)),
    ("POST", "/api/v1/workflows/open/versions/9/restore", only(AUTHORS, 404, 403)),
    ("GET", "/api/v1/workflows/open/audit", each(200)),
    ("GET", "/api/v1/workflows/draft/audit", only({ADMIN}, 200, 404)),
]
ANONYMOUS_STATUS = {"/login": 200, "/api/v1/openapi.json": 200}  # open to everyone


def _anonymous(method: str, path: str) -> int:
    bare = path.split("?")[0]
    if method == "POST" and bare == "/login":
        return 401
    if bare in ANONYMOUS_STATUS:
        return ANONYMOUS_STATUS[bare]
    return 401 if bare.startswith("/api/") else 302


ACCESS = [
    (method, path, caller, expected[caller] if caller != ANONYMOUS else _anonymous(method, path))
    for method, path, expected in PAGES + API
    for caller in CALLERS
]


@pytest.fixture
def world(app, load_workflow):
    """The three workflows and a pending run of each; returns the run ids by workflow key."""
    load_workflow(steps_workflow("open", [{"key": "a", "type": "noop"}]))
    load_workflow(steps_workflow("restricted", [{"key": "a", "type": "noop"}], allowed_roles=[ADMIN]))
    with app.app_context():
        draft = load_definition(db.session, steps_workflow("draft", [{"key": "a", "type": "noop"}]), draft=True)
        db.session.commit()
        draft_version = draft.version.id
    runs = {key: make_run(app, key, "pending") for key in ("open", "restricted")}
    runs["draft"] = make_run(app, "draft", "pending", version_id=draft_version)  # as if it had been published once
    return {**runs, "done": make_run(app, "open", "completed")}


@pytest.mark.parametrize(("method", "path", "caller", "expected"), ACCESS,
                         ids=[f"{m} {p} as {c}" for m, p, c, _ in ACCESS])
def test_route_answers_each_role_with_its_status(method, path, caller, expected, app, client, make_user, world):
    url = path.format(**world)
    if url.startswith("/api/"):
        headers = {}
        if caller != ANONYMOUS:
            headers["Authorization"] = f"Bearer {issue_api_token(app, make_user(caller))}"
        response = client.open(url, method=method, headers=headers, json={} if method in ("POST", "PUT") else None)
    else:
        if caller != ANONYMOUS:
            email = make_user(caller)
            signed_in = client.post("/login", data={"email": email, "password": PASSWORD,
                                                    "csrf_token": csrf_token(client)})
            assert signed_in.status_code == 302
        data = None
        if method == "POST":
            data = {"csrf_token": csrf_token(client, "/login" if caller == ANONYMOUS else "/account")}
            if url == "/login":
                data.update(email="nobody@test.example", password="wrong")
        response = client.open(url, method=method, data=data)
    assert response.status_code == expected, response.get_data(as_text=True)[:500]
    if caller == ANONYMOUS and expected == 302:
        assert "/login" in response.headers["Location"]


def _rule_of(app, method: str, path: str):
    adapter = app.url_map.bind("localhost")
    rule, _ = adapter.match(path.split("?")[0].format(open=1, restricted=2, draft=3, done=4), method=method,
                            return_rule=True)
    return rule.rule, method


def test_the_access_table_covers_every_route_and_method(app):
    """A new route (or method) fails here until it has its rows in the table."""
    routes = {
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static" and not rule.endpoint.startswith("sandbox.")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    covered = {_rule_of(app, method, path) for method, path, _ in PAGES + API}
    assert routes - covered == set()


def _sign_in(client, make_user, role: str) -> None:
    email = make_user(role)
    client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf_token(client)})


def test_an_htmx_panel_refresh_of_a_hidden_run_gets_a_small_fragment_not_the_error_page(client, make_user, world):
    _sign_in(client, make_user, Role.OPERATOR.value)
    response = client.get(f"/runs/{world['restricted']}", headers={"HX-Request": "true", "HX-Target": "run-panel"})
    html = response.get_data(as_text=True)
    assert response.status_code == 404
    assert html.startswith('<div class="flash flash-error" role="alert">') and len(html) < 300
    assert "<html" not in html and "nothing here" in html


def test_an_htmx_action_the_role_may_not_take_gets_a_small_403_fragment(client, make_user, world):
    _sign_in(client, make_user, Role.VIEWER.value)
    token = csrf_token(client, "/account")
    response = client.post(f"/runs/{world['open']}/cancel",
                           headers={"HX-Request": "true", "HX-Target": "run-panel", "X-CSRFToken": token})
    html = response.get_data(as_text=True)
    assert response.status_code == 403
    assert 'role="alert"' in html and "Your role does not allow this." in html
    assert "<html" not in html and len(html) < 300


def test_refusals_outside_a_panel_still_get_the_whole_error_page(client, make_user, world):
    _sign_in(client, make_user, Role.OPERATOR.value)
    plain = client.get(f"/runs/{world['restricted']}")
    restore = client.get(f"/runs/{world['restricted']}",
                         headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    for response in (plain, restore):
        assert response.status_code == 404
        assert "<html" in response.get_data(as_text=True)
