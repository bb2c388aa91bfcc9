"""The worker warms itself up with a real run that leaves nothing behind."""
import gc

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import LogEntry, Run, StepRun, Workflow, WorkflowVersion


def test_warm_up_executes_a_run_and_leaves_no_rows(app, load_workflow):
    from app.services.execution.warmup import warm_up

    with app.app_context():
        statements = []

        def count(conn, cursor, statement, *args):
            statements.append(statement)

        sa.event.listen(db.engine, "before_cursor_execute", count)
        try:
            warm_up(db.engine)
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", count)
        assert any(s.lstrip().upper().startswith("INSERT INTO STEP_RUNS") for s in statements)
        assert any("log_entries" in s for s in statements)
        for model in (Workflow, WorkflowVersion, Run, StepRun, LogEntry):
            assert db.session.scalar(sa.select(sa.func.count()).select_from(model)) == 0, model


def test_on_postgresql_warm_up_leaves_the_claim_and_the_ending_prepared_on_the_pooled_connection(app):
    """A new worker's first runs do not each pay for preparing the claim and the ending: the warm-up sends a short
    run's claim and its one-statement ending (for run 0, which does not exist) until psycopg has prepared both on the
    connection the pool hands out next, and they change nothing."""
    from app.services.execution.warmup import warm_up

    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("the claim and the ending are sent on the driver on PostgreSQL only")
        db.session.remove()
        db.engine.dispose()  # a fresh pool, as in a new worker
        warm_up(db.engine)
        with db.engine.connect() as connection:
            prepared = connection.exec_driver_sql("SELECT statement FROM pg_prepared_statements").scalars().all()
        assert any(s.lstrip().startswith("UPDATE runs SET status") and "RETURNING" in s for s in prepared), prepared
        assert any("WITH moved AS" in s for s in prepared), prepared
        for model in (Run, StepRun, LogEntry):
            assert db.session.scalar(sa.select(sa.func.count()).select_from(model)) == 0, model


def test_a_rollback_connection_discards_savepoints_and_rows(app):
    """The pysqlite recipe on one connection: a released SAVEPOINT still rolls back with the outer one."""
    from app.database import rollback_connection

    row = dict(key="sp", name="sp", draft_definition={}, description="", kind="manual", trigger="manual",
               state="draft", enabled=True, queue="default", timezone="UTC")
    with app.app_context():
        with rollback_connection(db.engine) as conn:
            nested = conn.begin_nested()
            conn.execute(sa.insert(Workflow).values(key="gone", **{k: v for k, v in row.items() if k != "key"},
                                                    created_at=sa.func.now(), updated_at=sa.func.now()))
            nested.rollback()
            nested = conn.begin_nested()
            conn.execute(sa.insert(Workflow).values(**row, created_at=sa.func.now(), updated_at=sa.func.now()))
            nested.commit()
            assert conn.scalar(sa.select(sa.func.count()).select_from(Workflow)) == 1
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Workflow)) == 0


def test_a_worker_on_an_unmigrated_database_still_starts(tmp_path, redis_url):
    """Warm-up is best effort: with no tables yet the worker logs a warning and keeps going."""
    import redis

    import jobs
    from app import create_app
    from jobs.worker import FlowdeskWorker

    fresh = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'empty.db'}", "REDIS_URL": redis_url,
                        "INSTANCE_DIR": str(tmp_path)})
    bound = jobs._app
    worker = FlowdeskWorker(["default"], connection=redis.Redis.from_url(redis_url), app=fresh)
    try:
        assert jobs.get_app() is fresh  # the worker's jobs run in the app it was given
        worker.warm_up()
    finally:
        gc.unfreeze()  # warm_up freezes the collector for the worker process, not for the test run
        jobs.bind_app(bound)


def test_a_worker_stops_listening_for_commands_within_seconds(app):
    """A worker's command listener (RQ's pubsub thread) lets the worker stop at once. With RQ's 60 s wait, redis-py's
    thread stop() waited out a listener that had already seen its unsubscribe: a burst worker ended, or `flask worker`
    stopped, up to a minute late (a test's drain then timed out)."""
    import threading
    import time

    from app.extensions import queues
    from jobs.worker import FlowdeskWorker

    with app.app_context():
        worker = FlowdeskWorker([queues.queue("default")], connection=queues.connection, app=app)
        worker.subscribe()
        deadline = time.monotonic() + 10
        while not worker.pubsub.subscribed and time.monotonic() < deadline:
            time.sleep(0.01)
        # The listener sees the channel go away before it is told to stop: it then waits for a new subscription.
        worker.pubsub.unsubscribe()
        while worker.pubsub.subscribed and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        stopping = threading.Thread(target=worker.unsubscribe, daemon=True)
        started = time.monotonic()
        stopping.start()
        stopping.join(timeout=10)
        assert not stopping.is_alive(), "the worker's listener kept it from stopping for 10 s"
        assert time.monotonic() - started < 5
