"""Jobs that execute and resume runs."""
from app.extensions import db
from app.services.execution.executor import process_run
from jobs import get_app


def execute_run(run_id: int) -> str:
    """Claim a pending run and execute its steps."""
    with get_app().app_context():
        try:
            return process_run(db.session, run_id).status
        finally:
            db.session.remove()


def resume_run(run_id: int) -> str:
    """Resume a run whose wait step is over."""
    with get_app().app_context():
        try:
            return process_run(db.session, run_id, resume=True).status
        finally:
            db.session.remove()


def run_job_failed(job, connection, exc_type, exc_value, tb) -> None:
    """RQ failure callback of run jobs: a job that timed out, raised or was abandoned ends its run as an error."""
    from rq.exceptions import AbandonedJobError
    from rq.timeouts import JobTimeoutException

    from app.services.execution.lost import end_lost_run

    if exc_type is not None and issubclass(exc_type, JobTimeoutException):
        code, message = "JOB_TIMEOUT", f"The run took longer than its job limit of {job.timeout} s and was stopped."
    elif exc_type is not None and issubclass(exc_type, AbandonedJobError):
        code, message = "WORKER_LOST", "The worker running this run was killed or lost."
    else:
        code, message = "JOB_FAILED", f"The run's job failed: {exc_type.__name__ if exc_type else 'error'}: {exc_value}"
    with get_app().app_context():
        try:
            end_lost_run(db.session, job.args[0], code, message, noticed_by="worker")
            db.session.commit()
        finally:
            db.session.remove()
