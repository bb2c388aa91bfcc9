"""Pages: sign-in, the workflow list, the Run form, the run page and its log, roles and CSRF."""
import re

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Run
from tests.conftest import PASSWORD, csrf_token
from tests.factories import get_run, start, steps_workflow

ROLES = ["viewer", "operator", "manager", "admin", "support"]


def test_signing_in_with_a_wrong_password_says_so_at_the_form(client, make_user):
    email = make_user("operator")
    response = client.post("/login", data={"email": email, "password": "nope", "csrf_token": csrf_token(client)})
    assert response.status_code == 401
    assert "Email or password is incorrect." in response.get_data(as_text=True)
    assert f'value="{email}"' in response.get_data(as_text=True)


def test_pages_need_sign_in(client):
    response = client.get("/workflows")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_sign_in_then_sign_out(client, make_user):
    email = make_user("viewer")
    token = csrf_token(client)
    response = client.post("/login?next=/runs", data={"email": email, "password": PASSWORD, "csrf_token": token})
    assert response.headers["Location"] == "/runs"
    assert client.get("/workflows").status_code == 200
    client.post("/logout", data={"csrf_token": csrf_token(client, "/workflows")})
    assert client.get("/workflows").status_code == 302


def test_sign_in_refuses_an_offsite_next(client, make_user):
    email = make_user("viewer")
    token = csrf_token(client)
    response = client.post("/login?next=//evil.example/x",
                           data={"email": email, "password": PASSWORD, "csrf_token": token})
    assert response.headers["Location"] == "/workflows"


def test_a_post_without_the_csrf_token_is_refused(client, make_user):
    email = make_user("operator")
    assert client.post("/login", data={"email": email, "password": PASSWORD}).status_code == 400


def test_an_htmx_post_without_the_csrf_header_is_refused(client, login_as, demo_workflows, app):
    email = login_as("operator")
    run_id = start(app, "attendance-import", email, {"site": "north", "day": "2026-11-20"})
    response = client.post(f"/runs/{run_id}/cancel", headers={"HX-Request": "true"})
    assert response.status_code == 400
    token = csrf_token(client, f"/runs/{run_id}")
    response = client.post(f"/runs/{run_id}/cancel", headers={"HX-Request": "true", "X-CSRFToken": token})
    assert response.status_code == 200
    assert get_run(app, run_id).status == "cancelled"


def test_workflow_search_filters_by_name_or_key_and_the_partial_is_just_the_table(client, login_as, demo_workflows):
    login_as("viewer")
    page = client.get("/workflows?q=attend").get_data(as_text=True)
    assert "Attendance import" in page and "Invoice sync" not in page
    assert "<html" in page
    by_key = client.get("/workflows?q=invoice-sync").get_data(as_text=True)
    assert "Invoice sync" in by_key and "Attendance import" not in by_key
    partial = client.get("/workflows?q=attend", headers={"HX-Request": "true", "HX-Target": "workflow-table"})
    html = partial.get_data(as_text=True)
    assert html.lstrip().startswith('<div id="workflow-table"') and "<html" not in html


def test_workflow_list_filters_by_type(client, login_as, demo_workflows):
    login_as("viewer")
    automated = client.get("/workflows?kind=automated").get_data(as_text=True)
    assert "Connection check" in automated and "Invoice sync" not in automated


def test_drafts_and_disabled_workflows_are_hidden_from_non_admins(app, client, login_as, load_workflow):
    from app.models import Workflow

    load_workflow(steps_workflow("hidden", [{"key": "a", "type": "noop"}]))
    with app.app_context():
        workflow = db.session.scalar(sa.select(Workflow).where(Workflow.key == "hidden"))
        workflow.enabled = False
        db.session.commit()
    login_as("manager")
    assert "Hidden" not in client.get("/workflows").get_data(as_text=True)
    assert client.get("/workflows/hidden").status_code == 404


def test_role_restricted_workflows_answer_404_to_other_roles(client, login_as, load_workflow):
    load_workflow(steps_workflow("payroll", [{"key": "a", "type": "noop"}], allowed_roles=["manager"]))
    login_as("operator")
    assert client.get("/workflows/payroll").status_code == 404


def test_run_form_is_generated_from_the_parameters(client, login_as, demo_workflows):
    login_as("operator")
    html = client.get("/workflows/attendance-import").get_data(as_text=True)
    assert re.search(r'<select id="param-site" name="site"', html)
    assert 'type="date"' in html and 'name="day"' in html
    assert 'type="checkbox" name="notify"' in html
    assert "Start run" in html


def test_run_form_errors_are_shown_next_to_each_field_and_values_kept(client, login_as, demo_workflows, app):
    login_as("operator")
    token = csrf_token(client, "/workflows/invoice-sync")
    response = client.post("/workflows/invoice-sync/runs", data={"since": "", "limit": "abc", "csrf_token": token})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Since is required" in html
    assert "Limit must be a whole number" in html
    assert 'value="abc"' in html
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Run)) == 0


def test_starting_a_run_from_the_form_opens_its_page(client, login_as, demo_workflows, app, drain):
    login_as("operator")
    token = csrf_token(client, "/workflows/attendance-import")
    response = client.post("/workflows/attendance-import/runs",
                           data={"site": "south", "day": "2026-11-20", "csrf_token": token})
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Pending" in page and 'hx-trigger="every 1s"' in page
    drain()
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Completed" in page
    assert "Fetch attendance rows" in page and "Anyone absent?" in page
    assert 'hx-trigger="every 1s"' not in page  # finished: nothing polls any more


def test_the_run_panel_partial_polls_only_while_active(client, login_as, demo_workflows, app, drain):
    email = login_as("operator")
    run_id = start(app, "attendance-import", email, {"site": "north", "day": "2026-11-20"})
    headers = {"HX-Request": "true", "HX-Target": "run-panel"}
    active = client.get(f"/runs/{run_id}", headers=headers).get_data(as_text=True)
    assert active.lstrip().startswith('<section id="run-panel"') and 'hx-trigger="every 1s"' in active
    drain()
    done = client.get(f"/runs/{run_id}", headers=headers).get_data(as_text=True)
    assert "Completed" in done and "hx-trigger" not in done.split(">", 1)[0]


def test_the_log_tail_returns_only_lines_after_the_cursor(client, login_as, demo_workflows, app, drain):
    from app.models import LogEntry

    email = login_as("operator")
    run_id = start(app, "attendance-import", email, {"site": "north", "day": "2026-11-20"})
    drain()
    with app.app_context():
        ids = db.session.scalars(sa.select(LogEntry.id).where(LogEntry.run_id == run_id).order_by(LogEntry.id)).all()
    assert len(ids) >= 4
    tail = client.get(f"/runs/{run_id}/log?after={ids[-2]}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert tail.count('data-id="') == 1 and f'data-id="{ids[-1]}"' in tail
    assert "End of log." in tail and "hx-trigger" not in tail


def test_the_log_level_filter_hides_lower_levels(client, login_as, demo_workflows, app, drain):
    email = login_as("operator")
    run_id = start(app, "payment-reminders", email, {"since": "2026-11-01"})
    drain()
    everything = client.get(f"/runs/{run_id}/log", headers={"HX-Request": "true"}).get_data(as_text=True)
    errors = client.get(f"/runs/{run_id}/log?level=error", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "level-info" in everything and "level-info" not in errors
    assert "HTTP_422" in errors


def test_technical_log_lines_are_for_support_only(client, make_user, load_workflow, app, drain):
    from app.models import LogEntry
    from app.vocabulary import LogLevel

    load_workflow(steps_workflow("tech", [{"key": "a", "type": "noop"}]))
    run_id = start(app, "tech", make_user("admin", "boss@test.example"))
    drain()
    with app.app_context():
        db.session.add(LogEntry(run_id=run_id, level="error", level_rank=LogLevel.ERROR.rank,
                                message="Traceback: secret internals", technical=True))
        db.session.commit()
    for role, visible in (("operator", False), ("support", True)):
        c = app.test_client()
        email = make_user(role)
        c.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf_token(c)})
        assert ("secret internals" in c.get(f"/runs/{run_id}").get_data(as_text=True)) is visible


# Who may open each page is the table in test_access.py; these check what a refused action leaves behind.
RUNNERS = {"operator", "manager", "admin", "support"}


@pytest.mark.parametrize("role", ROLES)
def test_only_roles_with_run_workflow_can_start_a_run(role, app, client, make_user, demo_workflows):
    email = make_user(role)
    client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf_token(client)})
    token = csrf_token(client, "/workflows")
    response = client.post("/workflows/attendance-import/runs",
                           data={"site": "north", "day": "2026-11-20", "csrf_token": token})
    assert response.status_code == (302 if role in RUNNERS else 403)
    with app.app_context():
        count = db.session.scalar(sa.select(sa.func.count()).select_from(Run))
    assert count == (1 if role in RUNNERS else 0)


@pytest.mark.parametrize("role", ROLES)
def test_only_roles_with_cancel_run_can_cancel(role, app, client, make_user, demo_workflows):
    run_id = start(app, "attendance-import", make_user("admin", "owner@test.example"),
                   {"site": "north", "day": "2026-11-20"})
    email = make_user(role)
    client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf_token(client)})
    token = csrf_token(client, "/workflows")
    response = client.post(f"/runs/{run_id}/cancel", data={"csrf_token": token})
    assert response.status_code == (302 if role in RUNNERS else 403)
    assert get_run(app, run_id).status == ("cancelled" if role in RUNNERS else "pending")


def test_a_viewer_sees_no_run_card_at_all(client, login_as, demo_workflows):
    login_as("viewer")
    html = client.get("/workflows/attendance-import").get_data(as_text=True)
    assert 'id="run"' not in html and "Run workflow" not in html and "Start run" not in html
    assert "<form" not in html.split("<main", 1)[1]
    assert "Fetch attendance rows" in html  # the rest of the page is still there


def _row(html: str, name: str) -> str:
    """The workflow list's table row that names `name`."""
    rows = [r for r in re.findall(r"<tr[ >].*?</tr>", html, re.S) if f"<strong>{name}</strong>" in r]
    assert len(rows) == 1, f"{len(rows)} rows name {name}"
    return rows[0]


def _text(html: str) -> str:
    """What a reader sees of `html`: the text without tags, white space collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))


def _cells(row: str) -> list[str]:
    return [re.sub(r"<[^>]+>|\s+", " ", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]


def test_the_workflow_list_says_what_starts_each_workflow_and_offers_run_only_for_manual_ones(client, login_as,
                                                                                            demo_workflows):
    login_as("operator")
    html = client.get("/workflows").get_data(as_text=True)
    automated = _row(html, "Connection check")
    assert _cells(automated)[2:4] == ["Automated", "API"]
    assert "#run" not in automated and ">Run<" not in automated and ">History<" in automated
    manual = _row(html, "Attendance import")
    assert _cells(manual)[2:4] == ["Manual", "Manual"]
    assert 'href="/workflows/attendance-import#run"' in manual and ">Run<" in manual


@pytest.mark.parametrize(("trigger", "label", "sentence"), [
    ("schedule", "Schedule", "Runs on a schedule."),
    ("api", "API", "Started by the API."),
    ("webhook", "Webhook", "Started by a signed webhook."),
    ("record", "Record", "Started when a record is created or changed."),
    (None, "Automatic", "Started automatically."),  # an automated workflow whose definition names no trigger
])
def test_an_automated_workflow_says_what_starts_it(trigger, label, sentence, client, login_as, load_workflow):
    extra = {"kind": "automated"} | ({"trigger": trigger} if trigger else {})
    load_workflow(steps_workflow("nightly", [{"key": "a", "type": "noop"}], **extra))
    login_as("viewer")
    row = _row(client.get("/workflows").get_data(as_text=True), "Nightly")
    assert _cells(row)[2:4] == ["Automated", label]
    page = client.get("/workflows/nightly").get_data(as_text=True)
    assert sentence in _text(page)
    assert 'id="run"' not in page  # a viewer gets no Run card, automated or not


def test_an_automated_workflow_can_be_run_by_hand_from_a_secondary_card(app, client, login_as, demo_workflows):
    login_as("operator")
    html = client.get("/workflows/sandbox-health").get_data(as_text=True)
    assert "Started by the API." in html
    assert "POST /api/v1/workflows/sandbox-health/runs" in html
    card = html[html.index('id="run"'):]
    card = card[:card.index("</section>")]
    assert "Run now by hand" in card and "Run workflow" not in card
    assert re.search(r'<button class="btn" type="submit">Start run</button>', card)  # not the primary button
    token = csrf_token(client, "/workflows/sandbox-health")
    response = client.post("/workflows/sandbox-health/runs", data={"csrf_token": token})
    assert response.status_code == 302
    run_id = int(response.headers["Location"].rsplit("/", 1)[1])
    assert get_run(app, run_id).trigger == "manual"  # recorded as what it was: a run started by hand


def test_a_manual_workflow_keeps_its_primary_run_card(client, login_as, demo_workflows):
    login_as("operator")
    html = client.get("/workflows/attendance-import").get_data(as_text=True)
    card = html[html.index('id="run"'):]
    card = card[:card.index("</section>")]
    assert "<h2>Run workflow</h2>" in card and "btn btn-primary" in card
    assert "Started by" not in html and "Run now by hand" not in html


@pytest.mark.parametrize(("change", "line"), [
    ({"enabled": False}, "Disabled: enable this workflow before it can run."),
    ({"state": "draft"}, "Draft: publish this workflow before it can run."),
])
def test_a_workflow_that_cannot_run_shows_a_status_line_not_a_run_card(change, line, app, client, login_as,
                                                                      load_workflow):
    from app.models import Workflow

    load_workflow(steps_workflow("paused", [{"key": "a", "type": "noop"}]))
    with app.app_context():
        db.session.execute(sa.update(Workflow).where(Workflow.key == "paused").values(**change))
        db.session.commit()
    login_as("admin")
    html = client.get("/workflows/paused").get_data(as_text=True)
    assert line in _text(html)
    assert 'id="run"' not in html and "Start run" not in html
    listing = "/workflows?state=drafts" if change.get("state") == "draft" else "/workflows"  # admins' Drafts list
    row = _row(client.get(listing).get_data(as_text=True), "Paused")
    assert ">Run<" not in row


def test_a_run_form_posted_after_the_workflow_was_disabled_says_why_in_place(app, client, login_as, demo_workflows):
    from app.models import Workflow

    login_as("admin")  # others no longer see a disabled workflow at all (404)
    token = csrf_token(client, "/workflows/attendance-import")
    with app.app_context():
        db.session.execute(sa.update(Workflow).where(Workflow.key == "attendance-import").values(enabled=False))
        db.session.commit()
    response = client.post("/workflows/attendance-import/runs", data={"site": "north", "day": "2026-11-20"},
                           headers={"HX-Request": "true", "X-CSRFToken": token})
    html = response.get_data(as_text=True)
    assert response.status_code == 409
    assert html.lstrip().startswith('<div id="run"') and 'role="alert"' in html and "disabled" in html
    assert "<form" not in html


def test_a_missing_run_is_404(client, login_as):
    login_as("admin")
    assert client.get("/runs/999999").status_code == 404


def test_runs_of_role_restricted_workflows_are_not_listed_for_other_roles(app, client, make_user, load_workflow):
    load_workflow(steps_workflow("payroll", [{"key": "a", "type": "noop"}], allowed_roles=["manager"]))
    load_workflow(steps_workflow("open", [{"key": "a", "type": "noop"}]))
    secret = start(app, "payroll", make_user("manager"))
    public = start(app, "open", make_user("operator", "other@test.example"))
    email = make_user("operator")
    client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf_token(client)})
    html = client.get("/runs").get_data(as_text=True)
    assert f"/runs/{public}" in html and f"/runs/{secret}" not in html
    assert client.get(f"/runs/{secret}").status_code == 404


def test_the_workflow_list_shows_when_each_workflow_last_ran(app, client, login_as, demo_workflows):
    email = login_as("operator")
    run_id = start(app, "sandbox-health", email)
    queued = get_run(app, run_id).queued_at.strftime("%Y-%m-%d %H:%M:%S")
    html = client.get("/workflows?q=sandbox").get_data(as_text=True)
    assert queued in html


def test_the_run_form_posted_by_htmx_answers_in_place(client, login_as, demo_workflows, app):
    login_as("operator")
    token = csrf_token(client, "/workflows/invoice-sync")
    headers = {"HX-Request": "true", "X-CSRFToken": token}
    bad = client.post("/workflows/invoice-sync/runs", data={"since": "", "limit": "2.5"}, headers=headers)
    html = bad.get_data(as_text=True)
    assert bad.status_code == 422 and "<html" not in html and html.lstrip().startswith("{#") is False
    assert 'id="run"' in html and "is required" in html and "whole number" in html
    good = client.post("/workflows/invoice-sync/runs", data={"since": "2026-11-01", "limit": "5"}, headers=headers)
    assert good.status_code == 200 and re.fullmatch(r"/runs/\d+", good.headers["HX-Redirect"])
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Run)) == 1
