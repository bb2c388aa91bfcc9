"""The journal: buffered step runs and log lines, one commit per checkpoint, and every event settled the same way."""
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.engine.definition import parse_definition
from app.engine.events import Cancelled, Completed, Errored, Failed, Parked, TakenOver
from app.engine.states import RunStatus
from app.engine.walker import Next
from app.extensions import db
from app.models import AuditEvent, LogEntry, Run, StepRun
from app.services.execution.claims import claim_run
from app.services.execution.journal import Journal
from app.timeutil import utcnow
from tests.factories import get_run, start, steps_workflow

STEPS = [{"key": "a", "type": "log", "name": "Say", "with": {"message": "hi"}},
         {"key": "b", "type": "noop", "name": "Nothing"}]


@pytest.fixture
def journal(app, load_workflow, make_user):
    """A journal for a freshly claimed run of a two-step workflow (checkpoints only when asked)."""
    load_workflow(steps_workflow("j", STEPS))
    run_id = start(app, "j", make_user("operator"))
    with app.app_context():
        snapshot = claim_run(db.session, run_id, RunStatus.PENDING, started_at=utcnow(), heartbeat_at=utcnow())
        db.session.commit()
        yield Journal(db.session, snapshot, checkpoint_seconds=3600, total=2)


@pytest.fixture
def commits(app):
    """The number of commits on the database so far, counted from when the test asks."""
    seen = []

    def count(conn):
        seen.append(1)

    with app.app_context():
        sa.event.listen(db.engine, "commit", count)
        yield seen
        sa.event.remove(db.engine, "commit", count)


def _spec(key: str):
    return parse_definition(steps_workflow("j", STEPS)).steps[key]


def _lines(app, run_id):
    with app.app_context():
        return db.session.execute(
            sa.select(LogEntry.message, LogEntry.step_run_id).where(LogEntry.run_id == run_id).order_by(LogEntry.id)
        ).all()


def test_buffered_work_is_written_by_one_commit_per_checkpoint(app, journal, commits):
    journal.log("info", "one")
    journal.begin_step(_spec("a"))
    journal.complete_step(Next("b"))
    assert _lines(app, journal.run.id) == []  # nothing written before the checkpoint
    assert journal.checkpoint() is None
    assert len(commits) == 1
    lines = _lines(app, journal.run.id)
    assert [message for message, _ in lines][0] == "one"
    assert lines[1][0].startswith("Step 'Say' completed in") and lines[1][1] is not None
    run = get_run(app, journal.run.id)
    assert (run.progress_done, run.progress_total) == (1, 2) and run.heartbeat_at is not None


def test_a_checkpoint_reads_a_cancel_request_and_notices_a_run_taken_over(app, journal):
    with app.app_context():
        db.session.execute(sa.update(Run).where(Run.id == journal.run.id).values(cancel_requested_at=utcnow()))
        db.session.commit()
    assert journal.checkpoint() == Cancelled()
    with app.app_context():
        db.session.execute(sa.update(Run).where(Run.id == journal.run.id).values(status="error"))
        db.session.commit()
    assert journal.checkpoint() == TakenOver()


def test_a_failure_settles_the_step_the_run_and_the_log_in_one_commit(app, journal, commits):
    journal.begin_step(_spec("a"))
    outcome = journal.settle(Failed("a", "Say", "BAD", "no", suggested_fix="fix it", detail="underneath"))
    assert outcome.status == "failed" and len(commits) == 1
    run = get_run(app, journal.run.id)
    assert (run.status, run.error_code, run.cursor) == ("failed", "BAD", "a")
    assert run.error_message == "Step 'Say' failed: no" and run.finished_at is not None
    step = run.steps[0]
    assert (step.status, step.error_code, step.suggested_fix) == ("failed", "BAD", "fix it")
    assert step.finished_at is not None
    step_lines = [message for message, step_run_id in _lines(app, journal.run.id) if step_run_id == step.id]
    assert step_lines == ["Step 'Say' failed [BAD]: no", "underneath"]


def test_a_park_leaves_the_step_waiting_and_says_when_to_resume(app, journal):
    until = utcnow() + timedelta(minutes=5)
    step = journal.begin_step(_spec("a"))
    outcome = journal.settle(Parked("a", "Say", until))
    assert (outcome.status, outcome.park_until, outcome.step_run_id, outcome.queue) == (
        "waiting", until, step.id, "default")
    run = get_run(app, journal.run.id)
    assert (run.status, run.cursor, run.finished_at) == ("waiting", "a", None)
    assert (run.steps[0].status, run.steps[0].resume_at, run.steps[0].finished_at) == ("waiting", until, None)


def test_a_completion_counts_only_the_steps_taken(app, journal):
    journal.begin_step(_spec("a"))
    journal.complete_step(Next("end"))
    outcome = journal.settle(Completed({"steps": {"a": {}}}))
    assert outcome.status == "completed" and outcome.park_until is None
    run = get_run(app, journal.run.id)
    assert (run.status, run.progress_done, run.progress_total, run.result) == ("completed", 1, 1, {"steps": {"a": {}}})
    assert _lines(app, journal.run.id)[-1] == ("Run completed: 1 step(s) done", None)


def test_a_cancel_marks_the_step_in_progress_cancelled(app, journal):
    journal.begin_step(_spec("b"))
    assert journal.settle(Cancelled()).status == "cancelled"
    run = get_run(app, journal.run.id)
    assert run.status == "cancelled" and run.steps[0].status == "cancelled"


def test_an_error_ending_keeps_the_progress_total_it_cannot_know(app, load_workflow, make_user):
    load_workflow(steps_workflow("e", STEPS))
    run_id = start(app, "e", make_user("operator"))
    with app.app_context():
        snapshot = claim_run(db.session, run_id, RunStatus.PENDING)
        db.session.commit()
        outcome = Journal(db.session, snapshot, 3600).settle(Errored("INVALID_DEFINITION", "bad", "invalid: bad"))
    assert outcome.status == "error"
    run = get_run(app, run_id)
    assert (run.status, run.error_code, run.progress_total) == ("error", "INVALID_DEFINITION", 2)


def test_a_run_taken_over_keeps_what_was_buffered_and_moves_nothing(app, journal):
    journal.log("info", "before the reconciler ended it")
    with app.app_context():
        db.session.execute(sa.update(Run).where(Run.id == journal.run.id).values(status="error"))
        db.session.commit()
    assert journal.settle(TakenOver()).status == "lost"
    assert _lines(app, journal.run.id) == [("before the reconciler ended it", None)]
    assert journal.settle(Completed({})).status == "lost"  # a late ending does not move it back either
    assert get_run(app, journal.run.id).status == "error"


def test_the_engine_s_own_endings_write_no_audit_rows(app, journal):
    journal.settle(Completed({}))
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)
                                 .where(AuditEvent.entity_type == "run")) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(StepRun)) == 0
