"""What a worker does with a run: execute or resume it, and schedule the resume of a parked run."""
from flask import current_app
from sqlalchemy.orm import Session

from app.engine.executor import ExecutorSettings, Outcome, execute_run
from app.engine.states import RunStatus
from app.extensions import queues


def executor_settings() -> ExecutorSettings:
    cfg = current_app.config
    return ExecutorSettings(
        variables=dict(cfg["FLOWDESK_VARS"]),
        checkpoint_seconds=cfg["CHECKPOINT_SECONDS"],
        http_timeout=cfg["HTTP_STEP_TIMEOUT"],
    )


def resume_job_id(run_id: int, step_run_id: int) -> str:
    return f"run-{run_id}-resume-{step_run_id}"


def process_run(session: Session, run_id: int, resume: bool = False) -> Outcome:
    """Execute (or resume) a run; a run that parks on a wait step is handed to rq-scheduler."""
    outcome = execute_run(session, run_id, executor_settings(), resume=resume)
    if outcome.status == RunStatus.WAITING.value and outcome.park_until is not None:
        queues.enqueue_at(
            outcome.park_until, outcome.queue, "jobs.runs.resume_run", run_id,
            job_id=resume_job_id(run_id, outcome.step_run_id),
        )
    return outcome
