"""Worker warm-up: one throw-away run executed and resumed inside a transaction that is rolled back."""
from sqlalchemy.orm import Session

from app.database import rollback_connection
from app.models import Run, Workflow, WorkflowVersion
from app.services import definitions
from app.services.execution.executor import ExecutorSettings, execute_run

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
    """Execute and resume a throw-away run inside a transaction that is rolled back.

    A worker calls this once before it forks work horses, so each horse inherits compiled SQL,
    imported modules, a configured dialect and an initialised Jinja instead of paying for them on
    every job. Nothing is left in the database: every commit inside is a SAVEPOINT release.
    """
    settings = ExecutorSettings(variables={}, checkpoint_seconds=0.0, http_timeout=1.0)
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
