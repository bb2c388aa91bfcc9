"""The reconciler: the database is the source of truth, so runs whose jobs Redis lost are put back.

A pending run whose execute job is gone (the enqueue failed after commit, or Redis restarted
without its data) is enqueued again; a waiting run whose resume is gone is scheduled again. The
claim makes a duplicate harmless: a run enqueued twice still executes once.
"""
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from rq.job import Job, JobStatus
from sqlalchemy.orm import Session

from app.engine.states import RunStatus, StepStatus
from app.extensions import queues
from app.models import Run, StepRun
from app.services.execution import enqueue_execute, execute_job_id, resume_job_id, schedule_resume
from app.timeutil import utcnow

GRACE_SECONDS = 30  # a run this new may still be on its way to the queue
BATCH = 500
_DEAD = {JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED, JobStatus.FINISHED}


@dataclass
class ReconcileReport:
    requeued: int = 0
    rescheduled: int = 0


def _job_alive(job_id: str) -> bool:
    """Whether a job with this id is queued, scheduled, deferred or running."""
    try:
        job = Job.fetch(job_id, connection=queues.connection)
    except Exception:  # NoSuchJobError, or a hash RQ can no longer read
        return False
    return job.get_status(refresh=False) not in _DEAD


def reconcile(session: Session, grace_seconds: float = GRACE_SECONDS) -> ReconcileReport:
    """Re-enqueue pending runs and re-schedule waiting runs whose jobs are gone from Redis."""
    report = ReconcileReport()
    cutoff = utcnow() - timedelta(seconds=grace_seconds)
    pending = session.execute(
        sa.select(Run.id, Run.attempt, Run.queue)
        .where(Run.status == RunStatus.PENDING.value, Run.queued_at < cutoff)
        .order_by(Run.id)
        .limit(BATCH)
    )
    for run_id, attempt, queue in pending:
        if not _job_alive(execute_job_id(run_id, attempt)):
            enqueue_execute(run_id, queue, attempt)
            report.requeued += 1
    waiting = session.execute(
        sa.select(Run.id, Run.queue, StepRun.id, StepRun.resume_at)
        .join(StepRun, sa.and_(StepRun.run_id == Run.id, StepRun.status == StepStatus.WAITING.value))
        .where(Run.status == RunStatus.WAITING.value)
        .order_by(Run.id)
        .limit(BATCH)
    )
    for run_id, queue, step_run_id, resume_at in waiting:
        if not _job_alive(resume_job_id(run_id, step_run_id)):
            schedule_resume(run_id, queue, step_run_id, max(resume_at, utcnow()))
            report.rescheduled += 1
    return report
