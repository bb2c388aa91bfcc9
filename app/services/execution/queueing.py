"""The RQ jobs that run runs: their names, their ids, and putting them on a queue or with rq-scheduler."""
from datetime import datetime

from flask import current_app

from app.extensions import queues

EXECUTE_JOB = "jobs.runs.execute_run"
RESUME_JOB = "jobs.runs.resume_run"
RUN_JOBS = (EXECUTE_JOB, RESUME_JOB)
RUN_JOB_FAILED = "jobs.runs.run_job_failed"


def _run_job_options(timeout: int | None) -> dict:
    """How run jobs are enqueued: RQ's time limit (the workflow's job timeout, else the configured one), and the
    callback that ends the run if the job dies."""
    return {"timeout": timeout or current_app.config["RUN_JOB_TIMEOUT"], "on_failure": RUN_JOB_FAILED}


def execute_job_id(run_id: int, attempt: int) -> str:
    return f"run-{run_id}-a{attempt}"


def resume_job_id(run_id: int, step_run_id: int) -> str:
    return f"run-{run_id}-resume-{step_run_id}"


def enqueue_execute(run_id: int, queue: str, attempt: int, timeout: int | None = None) -> None:
    """Put the job that executes attempt `attempt` of a run on the run's queue."""
    queues.enqueue(queue, EXECUTE_JOB, run_id, job_id=execute_job_id(run_id, attempt), **_run_job_options(timeout))


def schedule_execute(run_id: int, queue: str, attempt: int, when: datetime, timeout: int | None = None) -> None:
    """Have rq-scheduler put the job that executes attempt `attempt` of a run on its queue at `when` (a replay
    set for later); the job id is the one `enqueue_execute` uses, so the reconciler finds it either way."""
    queues.enqueue_at(when, queue, EXECUTE_JOB, run_id, job_id=execute_job_id(run_id, attempt),
                      **_run_job_options(timeout))


def schedule_resume(run_id: int, queue: str, step_run_id: int, when: datetime, timeout: int | None = None) -> None:
    """Have rq-scheduler put the job that resumes a parked run on the run's queue at `when`."""
    queues.enqueue_at(when, queue, RESUME_JOB, run_id, job_id=resume_job_id(run_id, step_run_id),
                      **_run_job_options(timeout))


APPROVAL_TIMEOUT_JOB = "jobs.approvals.expire_approval"
APPROVAL_TIMEOUT_JOB_LIMIT = 60  # seconds: the job reads one step run and writes two rows


def approval_timeout_job_id(run_id: int, step_run_id: int) -> str:
    return f"run-{run_id}-approval-{step_run_id}-timeout"


def schedule_approval_timeout(run_id: int, queue: str, step_run_id: int, when: datetime) -> None:
    """Have rq-scheduler reject an approval nobody decided on at `when` (the job does nothing once decided)."""
    queues.enqueue_at(when, queue, APPROVAL_TIMEOUT_JOB, run_id, step_run_id,
                      job_id=approval_timeout_job_id(run_id, step_run_id), timeout=APPROVAL_TIMEOUT_JOB_LIMIT)


def enqueue_resume(run_id: int, queue: str, step_run_id: int, timeout: int | None = None) -> None:
    """Put the job that resumes an approved run on the run's queue now."""
    queues.enqueue(queue, RESUME_JOB, run_id, job_id=resume_job_id(run_id, step_run_id), **_run_job_options(timeout))


def cancel_approval_timeout(run_id: int, step_run_id: int) -> None:
    """Take a decided approval's timeout job away from rq-scheduler (were it to fire, it would do nothing)."""
    unschedule(approval_timeout_job_id(run_id, step_run_id))


def unschedule_cancelled(run_id: int, attempt: int, waiting_step_run_ids: list[int]) -> None:
    """Take a cancelled run's jobs away from rq-scheduler: a replay set for later, the resume of a wait or of a
    retry's backoff, an approval's timeout (were one to fire, it would find the run cancelled and do nothing)."""
    unschedule(execute_job_id(run_id, attempt))
    for step_run_id in waiting_step_run_ids:
        unschedule(resume_job_id(run_id, step_run_id))
        unschedule(approval_timeout_job_id(run_id, step_run_id))


def unschedule(job_id: str) -> None:
    """Remove job `job_id` from rq-scheduler and delete it (nothing happens for a job that is not there)."""
    from rq.job import Job

    queues.scheduler().cancel(job_id)
    try:
        Job.fetch(job_id, connection=queues.connection).delete()
    except Exception:  # already gone: nothing to tidy
        pass
