"""Worker warm-up: one throw-away run executed and resumed inside a transaction that is rolled back, then (on
PostgreSQL) a short run's claim and ending sent as a real run sends them, for a run that does not exist."""
from sqlalchemy.orm import Session

from app.database import rollback_connection
from app.engine.events import Completed
from app.engine.states import RunStatus
from app.models import Run, Workflow, WorkflowVersion
from app.services import definitions
from app.services.execution.at_once import settle_at_once
from app.services.execution.claims import RunSnapshot, claim_run
from app.services.execution.executor import ExecutorSettings, execute_run
from app.services.execution.journal import Journal
from app.timeutil import utcnow

WARM_UP_DEFINITION = {
    "key": "flowdesk-warm-up",
    "name": "Worker warm-up",
    "params": [{"name": "n", "type": "integer", "default": 1}],
    "steps": [
        {"key": "note", "type": "log", "with": {"message": "warm-up {{ run.id }} {{ params.n }}"}},
        {"key": "pause", "type": "wait", "with": {"seconds": 1}},
        {"key": "check", "type": "condition", "with": {"expression": "params.n > 0"}, "then": "end", "else": "end"},
    ],
}


def warm_up(engine) -> None:
    """Execute and resume a throw-away run inside a transaction that is rolled back; on PostgreSQL, then send a short
    run's claim and ending until the pooled connection has them prepared.

    A worker calls this once before it forks work horses, so each horse inherits compiled SQL,
    imported modules, a configured dialect and an initialised Jinja instead of paying for them on
    every job. Nothing is left in the database: every commit inside is a SAVEPOINT release, and the
    claim and the ending name a run that does not exist.
    """
    settings = ExecutorSettings(variables={}, checkpoint_seconds=0.0, http_timeout=1.0)
    _warm_throw_away_run(engine, settings)
    if engine.dialect.name == "postgresql":
        _warm_driver_statements(engine)


def _warm_throw_away_run(engine, settings: ExecutorSettings) -> None:
    with rollback_connection(engine) as connection:
        session = Session(bind=connection, join_transaction_mode="create_savepoint")
        try:
            workflow = Workflow(key="flowdesk-warm-up", name="Worker warm-up", draft_definition=WARM_UP_DEFINITION)
            session.add(workflow)
            session.flush()
            version = WorkflowVersion(workflow_id=workflow.id, number=1, definition=WARM_UP_DEFINITION)
            session.add(version)
            session.flush()
            run = Run(workflow_id=workflow.id, version_id=version.id, params={"n": 1}, progress_total=3)
            session.add(run)
            session.commit()
            execute_run(session, run.id, settings)
            execute_run(session, run.id, settings, resume=True)
        finally:
            session.close()
            definitions.forget()


NO_RUN = 0  # run ids start at 1: a statement for run 0 finds nothing and changes nothing
DRIVER_WARM_UPS = 12


def _warm_driver_statements(engine) -> None:
    """Send a short run's claim and its one-statement ending (app/services/execution/at_once.py) for a run that does
    not exist, as often as it takes psycopg to prepare them on the pooled connection (its 6th execution) and
    PostgreSQL to settle on their plan (5 more). Without it a new worker's first dozen runs each paid for a parse and a
    plan of both: 33-38 ms of wall time for the twelve against 24-30 with it (bench/README.md)."""
    snapshot = RunSnapshot(id=NO_RUN, version_id=NO_RUN, attempt=1, params={}, cursor=None, trigger="api",
                           trigger_detail="warm-up", queue="default", progress_done=0, context=None, record_key=None)
    session = Session(bind=engine)
    try:
        values = Journal(session, snapshot, checkpoint_seconds=60.0, total=1).ending_values(Completed({}), utcnow())
        for _ in range(DRIVER_WARM_UPS):
            claim_run(engine, NO_RUN, RunStatus.PENDING, now=utcnow(), starting=True)
            settle_at_once(session, NO_RUN, RunStatus.COMPLETED, values, steps=[], lines=[])
    finally:
        session.close()
