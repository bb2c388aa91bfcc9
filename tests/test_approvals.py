"""Approval steps (R9): a run parks as waiting_for_approval holding no worker; someone whose role the step lists
approves it (the run goes on) or rejects it (the run ends as rejected); nobody deciding in time rejects it with
APPROVAL_TIMEOUT. Runs go through real forking workers and rq-scheduler, decisions through the pages and the API."""
import re
import time

import pytest
import sqlalchemy as sa

from app.engine.definition import DefinitionError, parse_definition
from app.extensions import db, queues
from app.models import AuditEvent, LogEntry
from tests.conftest import PASSWORD, csrf_token
from tests.factories import get_run, issue_api_token, start, steps_workflow, work_once


def approval_workflow(key: str = "ledger", **approval) -> dict:
    settings = {"roles": ["manager", "admin"], "message": "Post {{ params.count }} invoice(s) to the ledger?",
                "timeout_seconds": 86400, **approval}
    return steps_workflow(key, [
        {"key": "fetch", "type": "log", "with": {"message": "fetched {{ params.count }}"}},
        {"key": "approve", "type": "approval", "name": "Manager approval", "with": settings},
        {"key": "post", "type": "log", "with": {"message": "posted after {{ steps.approve.output.decision }}"}},
    ], params=[{"name": "count", "type": "integer", "default": 3}])


def signed_in(app, make_user, role: str, email: str | None = None):
    """A test client signed in as a new user with `role` (as `email`); returns the client and the email."""
    email = make_user(role, email)
    client = app.test_client()
    response = client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf_token(client)})
    assert response.status_code == 302
    return client, email


def decide(client, run_id: int, decision: str, comment: str = "", **headers):
    """Press Approve or Reject on the run page, as a browser would (it sends the page as the referrer)."""
    token = csrf_token(client, f"/runs/{run_id}")
    return client.post(f"/runs/{run_id}/approval", data={"decision": decision, "comment": comment,
                                                          "csrf_token": token},
                       headers={"Referer": f"http://localhost/runs/{run_id}", **headers})


def parked_run(app, load_workflow, make_user, starter: str = "operator", **approval) -> int:
    """A run of the approval workflow started by a new user with role `starter`, walked by a real worker until it
    parks at the approval step."""
    load_workflow(approval_workflow(**approval))
    run_id = start(app, "ledger", make_user(starter, f"starter-{starter}@test.example"))
    work_once(app)
    assert get_run(app, run_id).status == "waiting_for_approval"
    return run_id


def scheduled_job_ids(app) -> list[str]:
    with app.app_context():
        return [job.id for job in queues.scheduler().get_jobs()]


def log_messages(app, run_id: int) -> list[str]:
    with app.app_context():
        return db.session.scalars(sa.select(LogEntry.message).where(LogEntry.run_id == run_id)
                                  .order_by(LogEntry.id)).all()


def audit_actions(app, run_id: int) -> list[tuple[str, str]]:
    with app.app_context():
        return [(e.actor, e.action) for e in db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.entity_type == "run", AuditEvent.entity_id == run_id)
            .order_by(AuditEvent.id))]


def test_an_approval_step_parks_the_run_holding_no_worker(app, load_workflow, make_user):
    run_id = parked_run(app, load_workflow, make_user)
    run = get_run(app, run_id)
    assert [(s.step_key, s.status) for s in run.steps] == [("fetch", "completed"),
                                                            ("approve", "waiting_for_approval")]
    asked = run.steps[1]
    assert asked.approval_message == "Post 3 invoice(s) to the ledger?"
    assert asked.approver_roles == ["manager", "admin"]
    assert round((asked.approval_due_at - asked.started_at).total_seconds()) == 86400
    assert run.cursor == "approve" and run.progress_done == 1
    with app.app_context():
        assert queues.queue("default").count == 0  # nothing queued, no worker held: only the timeout is scheduled
    assert scheduled_job_ids(app) == [f"run-{run_id}-approval-{asked.id}-timeout"]
    assert any("for a decision by manager, admin" in m for m in log_messages(app, run_id))


def test_a_manager_approves_on_the_run_page_and_the_run_completes(app, load_workflow, make_user):
    run_id = parked_run(app, load_workflow, make_user)
    manager, email = signed_in(app, make_user, "manager")
    page = manager.get(f"/runs/{run_id}").get_data(as_text=True)
    assert "Post 3 invoice(s) to the ledger?" in page
    assert 'value="approve"' in page and 'value="reject"' in page

    response = decide(manager, run_id, "approve", "Checked the totals")
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/runs/{run_id}")
    approved = get_run(app, run_id)
    assert approved.status == "waiting"  # queued to go on, holding no worker until one takes it
    assert approved.steps[1].status == "completed" and approved.cursor == "post"
    assert scheduled_job_ids(app) == []  # the timeout went with the decision
    assert "Approved; goes on when a worker on queue" in manager.get(f"/runs/{run_id}").get_data(as_text=True)

    work_once(app)
    run = get_run(app, run_id)
    assert run.status == "completed"
    assert [(s.step_key, s.status) for s in run.steps] == [("fetch", "completed"), ("approve", "completed"),
                                                            ("post", "completed")]
    step = run.steps[1]
    assert (step.decision, step.decided_by, step.decision_comment) == ("approved", "Manager", "Checked the totals")
    assert step.decided_at is not None and step.finished_at == step.decided_at
    assert run.result["steps"]["post"]["message"] == "posted after approved"
    assert run.progress_done == run.progress_total == 3
    messages = log_messages(app, run_id)
    assert f"Step 'Manager approval' approved by {email}: Checked the totals" in messages
    assert messages.count("fetched 3") == 1  # the step before the approval is not run again
    assert audit_actions(app, run_id) == [(email, "approve_step")]
    page = manager.get(f"/runs/{run_id}").get_data(as_text=True)
    assert "Approved</strong> by <strong>Manager</strong>" in page and "Checked the totals" in page
    assert 'value="approve"' not in page and "goes on when a worker" not in page


def test_an_htmx_decision_swaps_the_run_panel_in_place(app, load_workflow, make_user):
    run_id = parked_run(app, load_workflow, make_user)
    manager, _ = signed_in(app, make_user, "manager")
    response = decide(manager, run_id, "approve", **{"HX-Request": "true", "HX-Target": "run-panel"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'id="run-panel"' in html and "<html" not in html
    assert "Approved: the run goes on from the next step." in html


def test_the_run_dialog_offers_the_decision_to_who_may_take_it_and_shows_the_run_going_on(app, load_workflow,
                                                                                          make_user):
    run_id = parked_run(app, load_workflow, make_user)
    dialog = {"HX-Request": "true", "HX-Target": "dialog-content"}
    manager, _ = signed_in(app, make_user, "manager")
    live = manager.get(f"/runs/{run_id}/dialog", headers=dialog).get_data(as_text=True)
    assert "Post 3 invoice(s) to the ledger?" in live
    assert 'hx-target="#dialog-content"' in live and 'value="approve"' in live
    response = decide(manager, run_id, "approve", "fine", **dialog)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and 'id="dialog-content"' in html and 'id="run-panel"' not in html
    assert 'value="approve"' not in html and get_run(app, run_id).status == "waiting"
    viewer, _ = signed_in(app, make_user, "viewer")
    assert 'value="approve"' not in viewer.get(f"/runs/{run_id}/dialog", headers=dialog).get_data(as_text=True)


def test_a_rejection_ends_the_run_as_rejected_with_who_when_and_why(app, load_workflow, make_user):
    run_id = parked_run(app, load_workflow, make_user)
    admin, email = signed_in(app, make_user, "admin")
    response = decide(admin, run_id, "reject", "Totals do not match the bank")
    assert response.status_code == 303
    run = get_run(app, run_id)
    assert run.status == "rejected" and run.finished_at is not None
    assert run.error_code == "APPROVAL_REJECTED" and "Totals do not match the bank" in run.error_message
    step = run.steps[1]
    assert (step.status, step.decision, step.decided_by) == ("rejected", "rejected", "Admin")
    assert step.decision_comment == "Totals do not match the bank"
    work_once(app)  # nothing is left to run
    assert [s.step_key for s in get_run(app, run_id).steps] == ["fetch", "approve"]
    assert audit_actions(app, run_id) == [(email, "reject_step")]
    assert f"Step 'Manager approval' rejected by {email}: Totals do not match the bank" in log_messages(app, run_id)
    page = admin.get(f"/runs/{run_id}").get_data(as_text=True)
    assert 'class="badge badge-rejected" id="run-status">Rejected<' in page
    assert "Rejected</strong> by <strong>Admin</strong>" in page


@pytest.mark.parametrize(("role", "roles", "reason"), [
    ("operator", ["manager", "admin"], "Only managers or admins may approve or reject this step."),  # no APPROVE_STEP
    ("manager", ["admin"], "Only admins may approve or reject this step."),  # APPROVE_STEP, but not listed
])
def test_someone_whose_role_may_not_decide_sees_who_may_and_is_refused(app, load_workflow, make_user, role, roles,
                                                                       reason):
    run_id = parked_run(app, load_workflow, make_user, roles=roles)
    client, _ = signed_in(app, make_user, role)
    page = client.get(f"/runs/{run_id}").get_data(as_text=True)
    assert 'value="approve"' not in page and 'value="reject"' not in page
    assert reason in page
    assert f"Waiting for a decision by {' or '.join(r + 's' for r in roles)} until" in page
    assert decide(client, run_id, "approve").status_code == 403
    assert get_run(app, run_id).status == "waiting_for_approval"
    assert audit_actions(app, run_id) == []


def test_the_one_who_started_the_run_may_not_approve_it_unless_the_step_allows_it(app, load_workflow, make_user):
    load_workflow(approval_workflow())
    load_workflow(approval_workflow("own", allow_self_approval=True))
    manager, email = signed_in(app, make_user, "manager")
    refused = start(app, "ledger", email)
    allowed = start(app, "own", email)
    work_once(app)

    page = manager.get(f"/runs/{refused}").get_data(as_text=True)
    assert "You started this run, so someone else must approve or reject it." in page
    assert 'value="approve"' not in page
    response = decide(manager, refused, "approve")
    assert response.status_code == 403
    assert "You started this run" in response.get_data(as_text=True)
    assert get_run(app, refused).status == "waiting_for_approval"

    assert decide(manager, allowed, "approve").status_code == 303
    work_once(app)
    assert get_run(app, allowed).status == "completed"


def test_an_approval_nobody_decides_on_in_time_rejects_the_run(app, load_workflow, make_user, drain):
    run_id = parked_run(app, load_workflow, make_user, timeout_seconds=1)
    time.sleep(1.1)
    drain()  # rq-scheduler moves the due timeout job onto the queue; a real worker runs it
    run = get_run(app, run_id)
    assert run.status == "rejected" and run.error_code == "APPROVAL_TIMEOUT"
    assert "within 1 second, so the run was rejected" in run.error_message
    step = run.steps[1]
    assert (step.status, step.decision, step.error_code) == ("rejected", "timed_out", "APPROVAL_TIMEOUT")
    assert step.decided_by is None
    assert audit_actions(app, run_id) == [("approval timeout", "approval_timeout")]
    assert any(m.startswith("[APPROVAL_TIMEOUT]") for m in log_messages(app, run_id))


def test_a_timeout_that_fires_after_the_decision_changes_nothing(app, load_workflow, make_user):
    from app.services.runs import expire_approval

    run_id = parked_run(app, load_workflow, make_user, timeout_seconds=1)
    step_run_id = get_run(app, run_id).steps[1].id
    manager, _ = signed_in(app, make_user, "manager")
    assert decide(manager, run_id, "reject").status_code == 303
    time.sleep(1.1)
    with app.app_context():
        assert expire_approval(db.session, run_id, step_run_id) is False
        db.session.commit()
    run = get_run(app, run_id)
    assert run.error_code == "APPROVAL_REJECTED" and run.steps[1].decision == "rejected"


def test_a_decision_on_a_run_that_no_longer_waits_is_a_conflict(app, load_workflow, make_user):
    run_id = parked_run(app, load_workflow, make_user)
    manager, _ = signed_in(app, make_user, "manager")
    admin, _ = signed_in(app, make_user, "admin")
    assert decide(manager, run_id, "approve").status_code == 303
    work_once(app)
    assert get_run(app, run_id).status == "completed"
    late = decide(admin, run_id, "reject", **{"HX-Request": "true", "HX-Target": "run-panel"})
    assert late.status_code == 409
    assert f"Run #{run_id} is not waiting for approval: it is completed." in late.get_data(as_text=True)
    token = issue_api_token(app, "admin@test.example")
    api = app.test_client().post(f"/api/v1/runs/{run_id}/approval", json={"decision": "reject"},
                                 headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 409 and "not waiting for approval" in api.get_json()["error"]
    assert get_run(app, run_id).steps[1].decision == "approved"


def test_a_comment_that_is_too_long_is_shown_at_its_field(app, load_workflow, make_user):
    run_id = parked_run(app, load_workflow, make_user)
    manager, _ = signed_in(app, make_user, "manager")
    response = decide(manager, run_id, "approve", "x" * 2001, **{"HX-Request": "true", "HX-Target": "run-panel"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert re.search(r'class="field has-error".*at most 2000 characters', html, re.S)
    assert 'aria-invalid="true"' in html and "x" * 2001 in html  # the typed comment is kept
    assert get_run(app, run_id).status == "waiting_for_approval"
    bad = decide(manager, run_id, "maybe", **{"HX-Request": "true", "HX-Target": "run-panel"})
    assert bad.status_code == 422 and "Choose approve or reject." in bad.get_data(as_text=True)


def test_waiting_for_me_lists_the_runs_i_may_decide_on_with_a_count_in_the_navigation(app, load_workflow,
                                                                                        make_user):
    load_workflow(approval_workflow())
    load_workflow(approval_workflow("admins-only", roles=["admin"]))
    manager, manager_email = signed_in(app, make_user, "manager")
    operator = make_user("operator")
    mine = [start(app, "ledger", operator) for _ in range(2)]
    own = start(app, "ledger", manager_email)  # started by the manager: someone else decides
    other = start(app, "admins-only", operator)  # the manager's role is not listed
    work_once(app)

    page = manager.get("/approvals").get_data(as_text=True)
    nav = re.search(r'<a href="/approvals" id="nav-approvals"[^>]*>(.*?)</a>', page, re.S).group(1)
    assert re.sub(r"<[^>]+>|\s+", " ", nav).split() == ["Waiting", "for", "me", "2"]
    listed = [int(n) for n in re.findall(r'<a href="/runs/(\d+)">Run #', page)]
    assert listed == mine and own not in listed and other not in listed
    assert page.count('value="approve"') == 2 and 'name="next" value="approvals"' in page

    token = csrf_token(manager, "/approvals")
    response = manager.post(f"/runs/{mine[0]}/approval", data={"decision": "approve", "next": "approvals",
                                                               "csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"].endswith("/approvals")
    page = manager.get("/approvals").get_data(as_text=True)
    assert re.findall(r'<a href="/runs/(\d+)">Run #', page) == [str(mine[1])]
    assert '<span class="count">1</span>' in page

    viewer, _ = signed_in(app, make_user, "viewer")
    assert "nav-approvals" not in viewer.get("/runs").get_data(as_text=True)
    assert viewer.get("/approvals").status_code == 403


def test_the_navigation_count_is_one_query(app, load_workflow, make_user):
    run_id = parked_run(app, load_workflow, make_user)
    manager, _ = signed_in(app, make_user, "manager")
    statements = []

    def count(conn, cursor, statement, *args):
        if "step_runs" in statement and "approval_roles" in statement:
            statements.append(statement)

    with app.app_context():
        sa.event.listen(db.engine, "before_cursor_execute", count)
        try:
            page = manager.get("/runs").get_data(as_text=True)
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", count)
    assert '<span class="count">1</span>' in page
    assert len(statements) == 1
    assert get_run(app, run_id).status == "waiting_for_approval"


def test_the_api_approves_and_rejects_and_names_what_is_wrong(app, load_workflow, make_user):
    load_workflow(approval_workflow())
    operator = make_user("operator")
    first, second = start(app, "ledger", operator), start(app, "ledger", operator)
    work_once(app)
    manager = issue_api_token(app, make_user("manager"))
    headers = {"Authorization": f"Bearer {manager}"}
    api = app.test_client()

    bad = api.post(f"/api/v1/runs/{first}/approval", json={"decision": "yes"}, headers=headers)
    assert bad.status_code == 422 and set(bad.get_json()["fields"]) == {"decision"}
    extra = api.post(f"/api/v1/runs/{first}/approval", json={"decision": "approve", "why": 1}, headers=headers)
    assert extra.status_code == 422 and set(extra.get_json()["fields"]) == {"why"}
    refused = api.post(f"/api/v1/runs/{first}/approval", json={"decision": "approve"},
                       headers={"Authorization": f"Bearer {issue_api_token(app, operator)}"})
    assert refused.status_code == 403

    approved = api.post(f"/api/v1/runs/{first}/approval", json={"decision": "approve", "comment": "ok"},
                        headers=headers)
    assert approved.status_code == 202
    assert approved.get_json() | {"url": None, "html_url": None} == {
        "id": first, "status": "waiting", "decision": "approve", "step": "approve", "url": None, "html_url": None}
    rejected = api.post(f"/api/v1/runs/{second}/approval", json={"decision": "reject"}, headers=headers)
    assert rejected.status_code == 200 and rejected.get_json()["status"] == "rejected"
    work_once(app)
    assert get_run(app, first).status == "completed"
    steps = api.get(f"/api/v1/runs/{first}", headers=headers).get_json()["steps"]
    assert [s["status"] for s in steps] == ["completed", "completed", "completed"]
    assert steps[0]["approval"] is None
    approval = steps[1]["approval"]
    assert {k: approval[k] for k in ("message", "roles", "decision", "decided_by", "comment")} == {
        "message": "Post 3 invoice(s) to the ledger?", "roles": ["manager", "admin"], "decision": "approved",
        "decided_by": "Manager", "comment": "ok"}
    assert approval["decided_at"].endswith("Z") and approval["due_at"].endswith("Z")


def test_cancelling_a_run_that_waits_for_approval_cancels_its_step(app, load_workflow, make_user):
    run_id = parked_run(app, load_workflow, make_user)
    operator, _ = signed_in(app, make_user, "operator", "other-operator@test.example")
    token = csrf_token(operator, f"/runs/{run_id}")
    assert operator.post(f"/runs/{run_id}/cancel", data={"csrf_token": token}).status_code == 302
    run = get_run(app, run_id)
    assert run.status == "cancelled" and run.steps[1].status == "cancelled"
    manager, _ = signed_in(app, make_user, "manager")
    response = decide(manager, run_id, "approve")  # a conflict, flashed on the page it came from
    assert response.status_code == 303
    page = manager.get(response.headers["Location"]).get_data(as_text=True)
    assert f"Run #{run_id} is not waiting for approval: it is cancelled." in page
    assert get_run(app, run_id).status == "cancelled"


def test_the_reconciler_schedules_a_lost_timeout_and_resumes_a_lost_approval_again(app, load_workflow, make_user):
    from app.services.reconcile import reconcile

    run_id = parked_run(app, load_workflow, make_user)
    step_run_id = get_run(app, run_id).steps[1].id
    with app.app_context():
        queues.connection.flushdb()
        assert reconcile(db.session).rescheduled == 1
        db.session.commit()
    assert scheduled_job_ids(app) == [f"run-{run_id}-approval-{step_run_id}-timeout"]

    manager, _ = signed_in(app, make_user, "manager")
    assert decide(manager, run_id, "approve").status_code == 303
    with app.app_context():
        queues.connection.flushdb()  # the resume job is lost with Redis
        assert reconcile(db.session).rescheduled == 1
        db.session.commit()
        assert reconcile(db.session).rescheduled == 0  # queued again once, not twice
    work_once(app)
    assert get_run(app, run_id).status == "completed"


@pytest.mark.parametrize(("settings", "field", "words"), [
    ({"message": "Go?"}, "roles", "non-empty list of the roles"),
    ({"roles": ["boss"], "message": "Go?"}, "roles", "from viewer, operator"),
    ({"roles": ["manager"]}, "message", "is required"),
    ({"roles": ["manager"], "message": "Go?", "timeout_seconds": 0}, "timeout_seconds", "between 0 and"),
    ({"roles": ["manager"], "message": "Go?", "timeout_seconds": "1h"}, "timeout_seconds", "number of seconds"),
    ({"roles": ["manager"], "message": "Go?", "allow_self_approval": "yes"}, "allow_self_approval", "true or false"),
    ({"roles": ["manager"], "message": "Go?", "approvers": ["x"]}, "approvers", "not a setting"),
    ({"roles": ["manager"], "message": "Post {{ params.x "}, "message", "invalid placeholder"),
])
def test_bad_approval_settings_are_named(settings, field, words):
    with pytest.raises(DefinitionError) as failure:
        parse_definition(steps_workflow("bad", [{"key": "ok", "type": "approval", "with": settings}]))
    messages = dict(failure.value.errors)
    assert words in messages[f"steps[0].with.{field}"], messages


def test_every_run_status_has_its_label_and_colour(app, client, login_as, load_workflow):
    """Seed 002's table: each of the nine statuses is shown with its label and a badge colour of its own."""
    from app.engine.states import RunStatus
    from tests.factories import make_run

    seed = {"pending": "Pending", "running": "Running", "completed": "Completed", "failed": "Failed",
            "cancelled": "Cancelled", "waiting_for_approval": "Waiting for approval", "rejected": "Rejected",
            "error": "Error", "waiting": "Waiting"}
    assert {s.value: s.label for s in RunStatus} == seed
    css = (app.static_folder + "/css/flowdesk.css")
    with open(css) as f:
        styles = f.read()
    colours = {s: re.search(rf"\.badge-{s}\s*\{{([^}}]*)\}}", styles).group(1) for s in seed}
    assert len(set(colours.values())) == len(seed)
    load_workflow(steps_workflow("shown", [{"key": "a", "type": "noop"}]))
    login_as("viewer")
    for status, label in seed.items():
        run_id = make_run(app, "shown", status, steps=1)
        html = client.get(f"/runs/{run_id}").get_data(as_text=True)
        assert f'<span class="badge badge-{status}" id="run-status">{label}</span>' in html
