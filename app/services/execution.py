"""What a worker does with a run: execute or resume it, and schedule the resume of a parked run."""
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import sqlalchemy as sa
from flask import current_app
from rq.timeouts import JobTimeoutException
from sqlalchemy.orm import Session

from app.database import rollback_connection
from app.engine.executor import ExecutorSettings, Outcome, execute_run
from app.engine.states import RunStatus, StepStatus
from app.engine.transitions import move
from app.extensions import queues
from app.models import LogEntry, Run, StepRun
from app.timeutil import utcnow
from app.vocabulary import LogLevel

log = logging.getLogger(__name__)


def executor_settings() -> ExecutorSettings:
    cfg = current_app.config
    return ExecutorSettings(
        variables=dict(cfg["FLOWDESK_VARS"]),
        checkpoint_seconds=cfg["CHECKPOINT_SECONDS"],
        http_timeout=cfg["HTTP_STEP_TIMEOUT"],
        outbound=current_app.extensions["flowdesk_outbound"],
        interrupts=(JobTimeoutException,),
    )


EXECUTE_JOB = "jobs.runs.execute_run"
RESUME_JOB = "jobs.runs.resume_run"
RUN_JOBS = (EXECUTE_JOB, RESUME_JOB)
RUN_JOB_FAILED = "jobs.runs.run_job_failed"


def _run_job_options() -> dict:
    """How run jobs are enqueued: RQ's time limit, and the callback that ends the run if the job dies."""
    return {"timeout": current_app.config["RUN_JOB_TIMEOUT"], "on_failure": RUN_JOB_FAILED}


def execute_job_id(run_id: int, attempt: int) -> str:
    return f"run-{run_id}-a{attempt}"


def resume_job_id(run_id: int, step_run_id: int) -> str:
    return f"run-{run_id}-resume-{step_run_id}"


def enqueue_execute(run_id: int, queue: str, attempt: int) -> None:
    """Put the job that executes attempt `attempt` of a run on the run's queue."""
    queues.enqueue(queue, EXECUTE_JOB, run_id, job_id=execute_job_id(run_id, attempt), **_run_job_options())


def schedule_resume(run_id: int, queue: str, step_run_id: int, when: datetime) -> None:
    """Have rq-scheduler put the job that resumes a parked run on the run's queue at `when`."""
    queues.enqueue_at(when, queue, RESUME_JOB, run_id, job_id=resume_job_id(run_id, step_run_id),
                      **_run_job_options())


def end_lost_run(session: Session, run_id: int, code: str, message: str, where=()) -> bool:
    """End a run whose job died mid-run (killed, timed out, crashed): the run and its running step
    become errors with `code`; completed steps stay completed. Returns whether the run was running
    (and matched the extra `where` criteria)."""
    now = utcnow()
    if not move(session, run_id, RunStatus.ERROR, only_from=[RunStatus.RUNNING], where=where,
                finished_at=now, error_code=code, error_message=message):
        return False
    session.execute(
        sa.update(StepRun)
        .where(StepRun.run_id == run_id, StepRun.status == StepStatus.RUNNING.value)
        .values(status=StepStatus.FAILED.value, finished_at=now, error_code=code, error_message=message)
        .execution_options(synchronize_session=False)
    )
    session.add(LogEntry.line(run_id, LogLevel.ERROR, f"[{code}] {message}"))
    return True


@contextmanager
def heartbeat(engine: sa.Engine, run_id: int, every: float) -> Iterator[None]:
    """Heartbeat a running run every `every` seconds while the block runs, so a long step never looks lost.

    The beats come from a side thread on connections of its own (never the executor's Session); the
    thread is stopped and joined when the block ends, however it ends.
    """
    stop = threading.Event()
    beat = (
        sa.update(Run)
        .where(Run.id == run_id, Run.status == RunStatus.RUNNING.value)
        .execution_options(synchronize_session=False)
    )

    def beat_until_stopped() -> None:
        while not stop.wait(every):
            try:
                with engine.begin() as connection:
                    connection.execute(beat.values(heartbeat_at=utcnow()))
            except Exception:  # a missed beat is not fatal: the next one tries again
                log.warning("heartbeat of run %s failed", run_id, exc_info=True)

    thread = threading.Thread(target=beat_until_stopped, name=f"heartbeat-run-{run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def process_run(session: Session, run_id: int, resume: bool = False) -> Outcome:
    """Execute (or resume) a run while heartbeating it; a run that parks on a wait step is handed to rq-scheduler."""
    with heartbeat(session.get_bind().engine, run_id, current_app.config["HEARTBEAT_SECONDS"]):
        outcome = execute_run(session, run_id, executor_settings(), resume=resume)
    if outcome.status == RunStatus.WAITING.value and outcome.park_until is not None:
        schedule_resume(run_id, outcome.queue, outcome.step_run_id, outcome.park_until)
    return outcome


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
    from app.models import Run, Workflow, WorkflowVersion

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
