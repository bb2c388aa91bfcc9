"""change_status: one conditional move with its log line and, for decisions taken outside a walk, an audit row."""
from datetime import timedelta

import sqlalchemy as sa

from app.engine.states import RunStatus
from app.extensions import db
from app.models import AuditEvent, LogEntry, User
from app.services.audit import AuditAction
from app.services.lifecycle import StatusChange, change_status
from app.services.reconcile import end_lost_runs
from app.timeutil import utcnow
from app.vocabulary import LogLevel
from tests.conftest import csrf_token
from tests.factories import get_run, make_run, start, steps_workflow


def _audit_rows(app):
    with app.app_context():
        return db.session.execute(
            sa.select(AuditEvent.actor, AuditEvent.actor_id, AuditEvent.entity_type, AuditEvent.entity_id,
                      AuditEvent.action, AuditEvent.changes)
            .where(AuditEvent.entity_type == "run").order_by(AuditEvent.id)
        ).all()


def _run(app, load_workflow, key: str, status: str, **fields) -> int:
    """A run of a new one-step workflow `key`, written straight into the database with `status`."""
    load_workflow(steps_workflow(key, [{"key": "a", "type": "noop"}]))
    return make_run(app, key, status, **fields)


def _user(email: str) -> User:
    return db.session.scalar(sa.select(User).where(User.email == email))


def _messages(app, run_id):
    with app.app_context():
        return db.session.scalars(sa.select(LogEntry.message).where(LogEntry.run_id == run_id)).all()


def test_a_change_says_where_the_run_came_from_logs_it_and_audits_who(app, load_workflow, make_user):
    email = make_user("operator")
    run_id = _run(app, load_workflow, "life", "waiting")
    with app.app_context():
        user = _user(email)
        change = change_status(db.session, run_id, RunStatus.CANCELLED, actor=user, action=AuditAction.CANCEL_RUN,
                               message="stopped", level=LogLevel.WARNING, finished_at=utcnow())
        db.session.commit()
        user_id = user.id
    assert change == StatusChange(run_id, RunStatus.WAITING, RunStatus.CANCELLED) and change.changed
    assert get_run(app, run_id).status == "cancelled"
    assert _messages(app, run_id) == ["stopped"]
    assert _audit_rows(app) == [(email, user_id, "run", run_id, "cancel_run",
                                 {"status": ["waiting", "cancelled"]})]


def test_a_change_that_another_process_beat_writes_nothing_and_says_where_the_run_is(app, load_workflow):
    run_id = _run(app, load_workflow, "late", "completed")
    with app.app_context():
        change = change_status(db.session, run_id, RunStatus.CANCELLED, actor="someone",
                               action=AuditAction.CANCEL_RUN, message="never")
        single = change_status(db.session, run_id, RunStatus.ERROR, only_from=[RunStatus.RUNNING], message="never")
        db.session.commit()
    assert change == StatusChange(run_id, RunStatus.COMPLETED, RunStatus.COMPLETED) and not change.changed
    assert single == StatusChange(run_id, RunStatus.COMPLETED, RunStatus.COMPLETED)
    assert _messages(app, run_id) == [] and _audit_rows(app) == []


def test_cancelling_from_the_page_is_audited_with_the_person(app, client, login_as, load_workflow):
    load_workflow(steps_workflow("page-cancel", [{"key": "a", "type": "noop"}]))
    email = login_as("operator")
    run_id = start(app, "page-cancel", email)
    response = client.post(f"/runs/{run_id}/cancel", data={"csrf_token": csrf_token(client, f"/runs/{run_id}")})
    assert response.status_code == 302
    [(actor, actor_id, entity, entity_id, action, changes)] = _audit_rows(app)
    assert (actor, entity, entity_id, action) == (email, "run", run_id, "cancel_run")
    assert actor_id is not None and changes == {"status": ["pending", "cancelled"]}
    assert f"Run cancelled by {email}" in _messages(app, run_id)


def test_a_cancel_request_for_a_running_run_is_audited_without_a_status_change(app, load_workflow, make_user):
    from app.services.runs import CancelOutcome, cancel_run

    email = make_user("operator")
    run_id = _run(app, load_workflow, "req", "running")
    with app.app_context():
        result = cancel_run(db.session, get_run(app, run_id), _user(email))
        db.session.commit()
    assert (result.outcome, result.status) == (CancelOutcome.REQUESTED, RunStatus.RUNNING)
    [row] = _audit_rows(app)
    assert row.action == "request_cancel" and list(row.changes) == ["cancel_requested_at"]
    assert get_run(app, run_id).status == "running"


def test_a_run_the_reconciler_ends_as_worker_lost_is_audited_as_the_reconciler(app, load_workflow):
    long_ago = utcnow() - timedelta(minutes=10)
    run_id = _run(app, load_workflow, "gone", "running", started_at=long_ago, heartbeat_at=long_ago)
    with app.app_context():
        assert end_lost_runs(db.session, stale_seconds=30) == 1
        db.session.commit()
    assert _audit_rows(app) == [("reconciler", None, "run", run_id, "end_lost_run",
                                 {"status": ["running", "error"], "error_code": [None, "WORKER_LOST"]})]
    assert any(m.startswith("[WORKER_LOST]") for m in _messages(app, run_id))
