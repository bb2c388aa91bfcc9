"""The journal: buffered step runs and log lines, one commit per checkpoint, and every event settled the same way."""
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.database import is_unique_violation, send_alone, send_in
from app.engine.definition import parse_definition
from app.engine.events import Cancelled, Completed, Errored, Failed, Parked, TakenOver
from app.engine.states import RunStatus
from app.engine.walker import Next
from app.extensions import db
from app.models import AuditEvent, LogEntry, Run, StepRun, User, Workflow
from app.services.execution import at_once
from app.services.execution.claims import _claim_statement, claim_run
from app.services.execution.journal import Journal
from app.services.runs import start_run
from app.engine.steps import StepResult
from app.timeutil import utcnow
from tests.factories import get_run, start, steps_workflow
from tests.test_polls import statements

STEPS = [{"key": "a", "type": "log", "name": "Say", "with": {"message": "hi"}},
         {"key": "b", "type": "noop", "name": "Nothing"}]


@pytest.fixture
def journal(app, load_workflow, make_user):
    """A journal for a freshly claimed run of a two-step workflow (checkpoints only when asked)."""
    load_workflow(steps_workflow("j", STEPS))
    run_id = start(app, "j", make_user("operator"))
    with app.app_context():
        snapshot = claim_run(db.session, run_id, RunStatus.PENDING, now=utcnow(), starting=True)
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
    # On PostgreSQL the ending is one statement outside any transaction (see the one-statement tests below).
    assert outcome.status == "failed" and len(commits) == (0 if db.engine.dialect.name == "postgresql" else 1)
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


def _claimed_journal(app, user) -> Journal:
    run_id = start(app, "j", user)
    snapshot = claim_run(db.session, run_id, RunStatus.PENDING, now=utcnow(), starting=True)
    db.session.commit()
    return Journal(db.session, snapshot, checkpoint_seconds=3600, total=2)


def _written(app, run_id: int) -> dict:
    """What the database holds of a run, without ids, times and the run's own number."""
    changing = {"id", "run_id", "step_run_id", "created_at", "queued_at", "scheduled_at", "started_at", "finished_at",
                "heartbeat_at", "resume_at", "executed_seconds", "trigger_detail"}
    with app.app_context(), db.engine.connect() as c:
        steps = c.execute(sa.select(StepRun).where(StepRun.run_id == run_id).order_by(StepRun.id)).all()
        step_keys = {row.id: row.step_key for row in steps}
        lines = c.execute(sa.select(LogEntry).where(LogEntry.run_id == run_id).order_by(LogEntry.id)).all()
        run = c.execute(sa.select(Run).where(Run.id == run_id)).one()
        return {
            "run": {k: v for k, v in run._mapping.items() if k not in changing},
            "steps": [{k: v for k, v in r._mapping.items() if k not in changing} for r in steps],
            "lines": [(step_keys.get(r.step_run_id), r.level, r.message.replace(f"#{run_id} ", "#N "), r.meta,
                       r.technical) for r in lines],
            "times": [(r.started_at is None, r.finished_at is None, r.resume_at is None) for r in steps],
        }


ENDINGS = {
    "completed": lambda: Completed({"steps": {"a": {"said": "hi"}}}),
    "failed": lambda: Failed("b", "Nothing", "BAD", "no", suggested_fix="fix it", detail="underneath",
                             traceback="Traceback ..."),
    "parked": lambda: Parked("b", "Nothing", utcnow() + timedelta(minutes=5)),
    "cancelled": lambda: Cancelled(),
}


@pytest.mark.parametrize("ending", sorted(ENDINGS))
def test_on_postgresql_a_walk_ends_in_one_statement_that_writes_what_the_regular_settle_writes(
        app, load_workflow, make_user, monkeypatch, ending):
    """A walk whose steps began since the last commit ends in one statement (the run's move, its step runs and its
    lines); the rows are those the regular settle writes, step by step and line by line."""
    load_workflow(steps_workflow("j", STEPS))
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("the one-statement ending is PostgreSQL's")
        written, user = {}, make_user("operator")
        event = ENDINGS[ending]()  # one event for both ways: a park's time is in a line, to the second
        for at_once in (True, False):
            journal = _claimed_journal(app, user)
            monkeypatch.setattr(Journal, "_at_once", lambda self, at_once=at_once: at_once)
            a = journal.begin_step(_spec("a"))
            journal.step_ran(StepResult(output={"said": "hi"}, logs=[("info", "hi", {"n": 1})],
                                        technical_logs=[("debug", "underneath", None)]))
            journal.complete_step(Next("b"))
            b = journal.begin_step(_spec("b"))
            with statements(app) as sent:
                outcome = journal.settle(event)
            assert outcome.status == ending.replace("parked", "waiting")
            assert a.id is not None and b.id > a.id and outcome.step_run_id in (b.id, None)
            if at_once:
                assert len([s for s in sent if not s.startswith(("COMMIT", "BEGIN"))]) == 1
            written[at_once] = _written(app, journal.run.id)
            db.session.remove()
    assert written[True] == written[False]
    assert [step["step_key"] for step in written[True]["steps"]] == ["a", "b"]


def test_on_postgresql_a_run_ended_under_the_walk_keeps_its_steps_and_lines_and_does_not_move(
        app, load_workflow, make_user):
    """The reconciler ended the run while its worker walked: the one-statement ending keeps what the worker did (as
    the regular settle does) and leaves the run where the reconciler put it."""
    load_workflow(steps_workflow("j", STEPS))
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("the one-statement ending is PostgreSQL's")
        journal = _claimed_journal(app, make_user("operator"))
        journal.begin_step(_spec("a"))
        journal.complete_step(Next("b"))
        with db.engine.begin() as other:
            other.execute(sa.update(Run).where(Run.id == journal.run.id).values(status="error"))
        assert journal.settle(Completed({})).status == "lost"
        db.session.remove()
        run = get_run(app, journal.run.id)
        assert run.status == "error" and [s.step_key for s in run.steps] == ["a"]
        assert [message for message, _ in _lines(app, journal.run.id)][-1] == "Run completed: 1 step(s) done"


def _generic_plan(connection, statement, params: dict) -> str:
    """PostgreSQL's generic plan of `statement` (the plan a prepared statement keeps), with `params` for EXPLAIN."""
    compiled = statement.compile(dialect=connection.dialect)
    order: list[str] = []

    def number(match):
        if match.group(1) not in order:
            order.append(match.group(1))
        return f"${order.index(match.group(1)) + 1}"

    sql = re.sub(r"%\((\w+)\)s", number, str(compiled))
    connection.exec_driver_sql(f"PREPARE probe AS {sql}")
    connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
    given = {**compiled.params, **params}
    values = ", ".join(str(sa.literal(given[name]).compile(dialect=connection.dialect,
                                                           compile_kwargs={"literal_binds": True})) for name in order)
    plan = "\n".join(row[0] for row in connection.exec_driver_sql(f"EXPLAIN EXECUTE probe({values})"))
    connection.exec_driver_sql("DEALLOCATE probe")
    return plan


def test_on_postgresql_a_claim_and_an_ending_find_the_run_by_its_primary_key_whatever_the_statistics(
        app, load_workflow, make_user):
    """With many runs pending and no table statistics yet (a new database, a burst before the first ANALYZE), the
    plans a worker keeps for its claim, its checkpoints and its one-statement ending read one run by its id: none of
    them walks the runs of a status (a cached plan once did, so a claim cost more the more runs were pending)."""
    load_workflow(steps_workflow("j", STEPS))
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("plans are PostgreSQL's")
        user = make_user("operator")
        run_id = [start(app, "j", user) for _ in range(30)][-1]
        now = utcnow()
        statements = {
            "claim": (_claim_statement(RunStatus.PENDING, True, True), {"run_id": run_id, "now": now}),
            "ending": (at_once._statement(("finished_at",)),
                       {"target": "completed", "finished_at": now, "run_id": run_id, "running": "running",
                        "steps": "[]", "lines": "[]"}),
            "checkpoint": (Journal.checkpoint_statement(True),
                           {"run_id": run_id, "now": now, "progress_done": 0, "progress_total": 2}),
        }
        with db.engine.begin() as connection:
            for name, (statement, params) in statements.items():
                plan = _generic_plan(connection, statement, params)
                scans = [line for line in plan.splitlines() if "Scan" in line and " on runs" in line]
                assert scans and all("pk_runs" in line for line in scans), (name, plan)


def test_on_postgresql_the_claim_and_the_ending_sent_on_the_driver_write_and_read_what_sqlalchemy_does(
        app, load_workflow, make_user, monkeypatch):
    """With no statement listener on the engine, a worker's claim and one-statement ending go straight to psycopg
    (send_alone): the claim returns the same snapshot as SQLAlchemy's execution, JSON parsed and times as datetimes,
    and the ending writes the same rows as the regular settle."""
    load_workflow(steps_workflow("p", STEPS, params=[{"name": "n", "type": "integer"}]))
    load_workflow(steps_workflow("j", STEPS))
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("statements sent on the driver are PostgreSQL's")
        user = make_user("operator")
        assert not db.engine.dispatch.before_cursor_execute and not db.engine.dispatch.after_cursor_execute
        now = utcnow()
        sent_alone, through_sqlalchemy = start(app, "p", user, {"n": 1}), start(app, "p", user, {"n": 1})
        snapshot = claim_run(db.engine, sent_alone, RunStatus.PENDING, now=now, starting=True)
        with db.engine.begin() as connection:
            expected = claim_run(connection, through_sqlalchemy, RunStatus.PENDING, now=now, starting=True)
        assert snapshot.params == {"n": 1} == expected.params
        assert {**snapshot.__dict__, "id": 0} == {**expected.__dict__, "id": 0}
        assert claim_run(db.engine, sent_alone, RunStatus.PENDING, now=now) is None  # already running
        assert get_run(app, sent_alone).status == "running" and get_run(app, sent_alone).started_at == now

        written = {}
        for at_once in (True, False):
            journal = _claimed_journal(app, user)
            monkeypatch.setattr(Journal, "_at_once", lambda self, at_once=at_once: at_once)
            journal.begin_step(_spec("a"))
            journal.step_ran(StepResult(output={"said": "hi"}, logs=[("info", "hi", {"n": 1})]))
            journal.complete_step(Next("b"))
            journal.begin_step(_spec("b"))
            assert journal.settle(ENDINGS["completed"]()).status == "completed"
            written[at_once] = _written(app, journal.run.id)
            db.session.remove()
        assert written[True] == written[False] and written[True]["run"]["result"] == {"steps": {"a": {"said": "hi"}}}


def test_on_postgresql_a_statement_sent_on_the_driver_fails_as_sqlalchemy_fails_and_leaves_the_pool_sound(
        app, load_workflow, make_user):
    """A statement that fails on the driver raises SQLAlchemy's exception (a unique violation is an IntegrityError the
    web layer answers with 409), in the session's transaction or alone; the connection goes back to the pool in
    transaction mode, and a run started and rolled back leaves no row."""
    load_workflow(steps_workflow("j", STEPS))
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("statements sent on the driver are PostgreSQL's")
        user = make_user("operator")
        taken = {"email": user, "name": "x", "role": "viewer", "password_hash": "x", "active": True}
        with pytest.raises(sa.exc.IntegrityError) as caught:
            send_in(db.session.connection(), sa.insert(User.__table__), taken)
        assert is_unique_violation(caught.value)
        db.session.rollback()
        with pytest.raises(sa.exc.ProgrammingError):
            send_alone(db.engine, sa.text("SELECT * FROM no_such_table WHERE id = :id"), {"id": 1})
        for _ in range(db.engine.pool.size() + 1):  # every pooled connection is back in transaction mode
            with db.engine.connect() as connection:
                assert connection.connection.driver_connection.autocommit is False

        workflow = db.session.scalar(sa.select(Workflow).where(Workflow.key == "j"))
        run = start_run(db.session, workflow, db.session.scalar(sa.select(User).where(User.email == user)), {})
        run_id = run.id
        assert run_id is not None and run.dry_run is False and run.params == {} and run.executed_seconds == 0
        db.session.rollback()
        assert db.session.get(Run, run_id) is None


def test_on_postgresql_a_connection_lost_under_a_statement_sent_alone_is_not_handed_out_again(app):
    """A pooled connection whose server process ended fails the statement sent on it, as SQLAlchemy's path does, and
    leaves the pool: the next statement gets a connection that works."""
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("statements sent on the driver are PostgreSQL's")
        db.engine.dispose()
        ask = sa.text("SELECT pg_backend_pid() AS pid")
        pid = send_alone(db.engine, ask, {})["pid"]
        outside = sa.create_engine(db.engine.url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        with outside.connect() as other:
            assert other.scalar(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(sa.exc.OperationalError):
            for _ in range(db.engine.pool.size() + 1):  # until the pool hands out the dead connection
                send_alone(db.engine, ask, {})
        assert send_alone(db.engine, ask, {})["pid"] != pid
        assert all(send_alone(db.engine, ask, {})["pid"] != pid for _ in range(db.engine.pool.size() + 1))
