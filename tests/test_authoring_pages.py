"""The lifecycle pages as people use them (without a browser): the Drafts switch, versions and their diffs,
restore refused then accepted, clone with a bad then a good name, disable, archive, export."""
import json
import re

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Run, User, Workflow
from app.services.workflows import create_draft, publish, save_version
from tests.conftest import PASSWORD, csrf_token
from tests.factories import make_run, steps_workflow
from tests.test_polls import statements


def _doc(key="orders", message="one", **extra):
    return steps_workflow(key, [{"key": "fetch", "type": "http_request", "name": "Fetch",
                                 "with": {"url": "https://example.com/orders"}},
                                {"key": "report", "type": "log", "name": "Report", "with": {"message": message}}],
                          **extra)


def sign_in(client, make_user, role) -> str:
    email = make_user(role)
    response = client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf_token(client)})
    assert response.status_code == 302
    return email


def post(client, path, **data):
    return client.post(path, data={"csrf_token": csrf_token(client, "/account"), **data})


@pytest.fixture
def authored(app, make_user):
    """`orders` with v1 and v2 (v2 live) and `sketch`, a draft; made by an admin whose email is returned."""
    email = make_user("admin", "author@test.example")
    with app.app_context():
        admin = db.session.scalar(sa.select(User).where(User.email == email))
        orders = create_draft(db.session, admin, _doc())
        save_version(db.session, orders, admin, document=_doc(message="two"))
        publish(db.session, orders, admin)
        create_draft(db.session, admin, _doc("sketch"))
        db.session.commit()
    return email


def _keys(html: str) -> list[str]:
    return re.findall(r'data-workflow="([^"]+)"', html)


def test_admins_switch_between_published_drafts_and_archived(client, make_user, authored):
    sign_in(client, make_user, "admin")
    published = client.get("/workflows").get_data(as_text=True)
    assert _keys(published) == ["orders"] and 'aria-current="page">Published' in published
    drafts = client.get("/workflows?state=drafts").get_data(as_text=True)
    assert _keys(drafts) == ["sketch"]
    assert 'href="/workflows/sketch/edit"' in drafts  # a draft row leads back into its editor
    assert _keys(client.get("/workflows?state=archived").get_data(as_text=True)) == []


@pytest.mark.parametrize("role", ["viewer", "operator", "manager", "support"])
def test_others_never_see_drafts_nor_the_switch(client, make_user, authored, role):
    sign_in(client, make_user, role)
    html = client.get("/workflows?state=drafts").get_data(as_text=True)
    assert _keys(html) == ["orders"] and 'id="state-switch"' not in html
    assert client.get("/workflows/sketch").status_code == 404
    assert client.get("/workflows/sketch/versions").status_code == 404


def test_row_actions_follow_the_role(app, client, make_user, authored):
    make_run(app, "orders", "completed")
    sign_in(client, make_user, "manager")
    html = client.get("/workflows").get_data(as_text=True)
    assert 'aria-label="Edit Orders"' in html and 'href="/workflows/orders/edit?section=settings"' in html
    assert 'aria-label="Clone Orders"' not in html and 'aria-label="Export Orders"' in html
    assert re.search(r'href="/runs/\d+#log-panel" aria-label="Logs of the latest run of Orders"', html)
    client.post("/logout", data={"csrf_token": csrf_token(client, "/account")})
    sign_in(client, make_user, "viewer")
    html = client.get("/workflows").get_data(as_text=True)
    assert "Edit Orders" not in html and "Clone Orders" not in html and "Export Orders" not in html


def test_the_workflow_page_says_which_version_is_live_and_what_is_unpublished(app, client, make_user, authored):
    sign_in(client, make_user, "admin")
    html = client.get("/workflows/orders").get_data(as_text=True)
    assert "v2 is live" in html and 'id="unpublished"' not in html and "Publish v" not in html
    with app.app_context():
        orders = db.session.scalar(sa.select(Workflow).where(Workflow.key == "orders"))
        save_version(db.session, orders, db.session.get(User, 1), document=_doc(message="three"))
        db.session.commit()
    html = client.get("/workflows/orders").get_data(as_text=True)
    assert "v3 not published" in html and ">Publish v3</button>" in html
    assert '<div class="muted small unpublished">v3 not published</div>' in client.get("/workflows").get_data(
        as_text=True)
    response = post(client, "/workflows/orders/publish")
    assert response.status_code == 303
    assert "v3 is live" in client.get("/workflows/orders").get_data(as_text=True)


def test_versions_and_their_diffs(client, make_user, authored):
    sign_in(client, make_user, "viewer")
    html = client.get("/workflows/orders/versions").get_data(as_text=True)
    assert re.findall(r'data-version="(\d+)"', html) == ["2", "1"]
    assert "Restore" not in html  # viewers never restore
    diff = client.get("/workflows/orders/versions/2").get_data(as_text=True)
    assert "steps.report.with.message" in diff and "changed 1 step" in diff
    assert '<span class="diff-add">+        &#34;message&#34;: &#34;two&#34;</span>' in diff
    against_live = client.get("/workflows/orders/versions/1?against=live").get_data(as_text=True)
    assert "v1 compared with v2 (live)" in against_live
    assert client.get("/workflows/orders/versions/5").status_code == 404


def test_the_versions_list_reads_no_definition_but_the_newest(app, client, make_user, authored):
    """Every save is a version: a workflow saved hundreds of times would parse every definition on each view of its
    versions. The list reads numbers, authors, times and summaries; only the newest version's definition is read
    (the heading compares the working copy with it)."""
    sign_in(client, make_user, "admin")
    with statements(app) as seen:
        assert client.get("/workflows/orders/versions").status_code == 200
    definitions = [s for s in seen if "workflow_versions.definition" in s]
    assert definitions and all("LIMIT" in s or "workflow_versions.id = " in s for s in definitions), definitions


def test_restore_is_refused_while_a_run_waits_then_accepted(app, client, make_user, authored):
    run_id = make_run(app, "orders", "waiting")
    sign_in(client, make_user, "admin")
    form = client.get("/workflows/orders/versions/1/restore")
    assert form.status_code == 409 and "1 run is pending, running or waiting" in form.get_data(as_text=True)
    refused = post(client, "/workflows/orders/versions/1/restore")
    assert refused.status_code == 409 and "Restore is refused" in refused.get_data(as_text=True)
    with app.app_context():
        db.session.execute(sa.update(Run).where(Run.id == run_id).values(status="cancelled"))
        db.session.commit()
    assert ">Restore v1</button>" in client.get("/workflows/orders/versions/1/restore").get_data(as_text=True)
    accepted = post(client, "/workflows/orders/versions/1/restore")
    assert accepted.status_code == 303 and accepted.headers["Location"].endswith("/workflows/orders/versions")
    html = client.get("/workflows/orders/versions").get_data(as_text=True)
    assert "Restored v1 as v3; it is the working copy and is live." in html
    assert re.findall(r'data-version="(\d+)"', html) == ["3", "2", "1"]


def test_clone_with_a_bad_then_a_good_name(client, make_user, authored):
    sign_in(client, make_user, "admin")
    assert 'value="Copy of Orders"' in client.get("/workflows/orders/clone").get_data(as_text=True)
    long = "A name that goes on for far longer than fifty characters"
    bad = post(client, "/workflows/orders/clone", name=long)
    html = bad.get_data(as_text=True)
    assert bad.status_code == 422 and f'value="{long}"' in html
    assert "Name must be at most 50 characters (it has 56)" in html
    good = post(client, "/workflows/orders/clone", name="Orders EU")
    assert good.status_code == 303 and good.headers["Location"].endswith("/workflows/orders-eu")
    page = client.get("/workflows/orders-eu").get_data(as_text=True)
    assert "Cloned as the draft Orders EU" in page and "badge-draft" in page


def test_disable_then_enable_from_the_page(app, client, make_user, authored):
    sign_in(client, make_user, "admin")
    assert post(client, "/workflows/orders/disable").status_code == 303
    assert "takes no new runs" in client.get("/workflows/orders").get_data(as_text=True)
    refused = post(client, "/workflows/orders/runs")
    assert refused.status_code == 409 and "disabled" in refused.get_data(as_text=True)
    client.post("/logout", data={"csrf_token": csrf_token(client, "/account")})
    sign_in(client, make_user, "operator")
    assert _keys(client.get("/workflows").get_data(as_text=True)) == []


def test_a_draft_cannot_be_run_from_its_page(client, make_user, authored):
    sign_in(client, make_user, "admin")
    response = post(client, "/workflows/sketch/runs")
    assert response.status_code == 409 and "This workflow is a draft" in response.get_data(as_text=True)


def test_archive_hides_the_workflow_and_keeps_its_runs(app, client, make_user, authored):
    run_id = make_run(app, "orders", "completed")
    sign_in(client, make_user, "admin")
    response = post(client, "/workflows/orders/archive")
    assert response.status_code == 303 and response.headers["Location"].endswith("/workflows?state=archived")
    assert _keys(client.get("/workflows").get_data(as_text=True)) == []
    assert _keys(client.get("/workflows?state=archived").get_data(as_text=True)) == ["orders"]
    assert client.get(f"/runs/{run_id}").status_code == 200
    assert "Archived:" in client.get("/workflows/orders").get_data(as_text=True)


def test_export_downloads_the_definition_with_its_settings(client, make_user, authored):
    sign_in(client, make_user, "operator")
    response = client.get("/workflows/orders/export")
    assert response.headers["Content-Disposition"] == 'attachment; filename="orders.json"'
    document = json.loads(response.get_data(as_text=True))
    assert document["steps"][1]["with"]["message"] == "two" and document["queue"] == "default"
    assert document["settings"] == {"timeout_seconds": None, "max_runtime_seconds": None, "max_actions": None,
                                    "max_nodes": 200}


def test_the_audit_tab_shows_who_changed_what(client, make_user, authored):
    sign_in(client, make_user, "viewer")
    html = client.get("/workflows/orders/audit").get_data(as_text=True)
    assert re.findall(r'data-action="([a-z_]+)"', html) == ["publish", "save_version", "create_workflow"]
    assert "author@test.example" in html
    assert ('<span class="mono">steps.report.with.message</span>: <span class="old">one</span> → '
            '<span class="new">two</span>') in html
