"""The reconciler: the database is the source of truth, so runs whose jobs Redis lost are put back,
and runs whose worker is gone are ended.

A pending run whose execute job is gone (the enqueue failed after commit, or Redis restarted
without its data) is enqueued again, or, for a replay set for a time still to come, handed back to
rq-scheduler for that time; a waiting run whose resume is gone is scheduled again (or, when an approval let it
go on, enqueued again); a run waiting for approval whose timeout job is gone gets it scheduled again. The
claim makes a duplicate harmless: a run enqueued twice still executes once.

A running run whose heartbeat is older than STALE_RUN_SECONDS lost its worker and work horse
together (a lost host, the OOM killer): it ends as an error WORKER_LOST, completed steps staying
completed. A live worker heartbeats every HEARTBEAT_SECONDS, also during a long step.
"""
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from rq.job import Job, JobStatus
from sqlalchemy.orm import Session

from app.engine.states import RunStatus, StepStatus
from app.extensions import queues
from app.models import Run, StepRun
from app.services.execution.lost import end_lost_run
from app.services.execution.queueing import (
    approval_timeout_job_id, enqueue_execute, enqueue_resume, execute_job_id, resume_job_id, schedule_approval_timeout,
    schedule_execute, schedule_resume,
)
from app.timeutil import utcnow

GRACE_SECONDS = 30  # a run this new may still be on its way to the queue
BATCH = 500
_DEAD = {JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED, JobStatus.FINISHED}


@dataclass
class ReconcileReport:
    requeued: int = 0
    rescheduled: int = 0
    lost: int = 0


def _job_alive(job_id: str) -> bool:
    """Whether a job with this id is queued, scheduled, deferred or running."""
    try:
        job = Job.fetch(job_id, connection=queues.connection)
    except Exception:  # NoSuchJobError, or a hash RQ can no longer read
        return False
    return job.get_status(refresh=False) not in _DEAD


def end_lost_runs(session: Session, stale_seconds: float) -> int:
    """End running runs with no heartbeat for `stale_seconds` as errors WORKER_LOST; returns how many."""
    cutoff = utcnow() - timedelta(seconds=stale_seconds)
    # Only running runs are read (ix_runs_status_id), and there are about as many as busy work horses.
    lost = session.scalars(
        sa.select(Run.id)
        .where(Run.status == RunStatus.RUNNING.value, Run.heartbeat_at < cutoff)
        .order_by(Run.id)
        .limit(BATCH)
    ).all()
    message = (f"The worker running this run stopped reporting (no heartbeat for over {stale_seconds:g} s), "
               "so it was lost with its host or killed; completed steps stay completed.")
    # The heartbeat is checked again in the UPDATE: a run that beat since the read is not ended.
    still_stale = (Run.heartbeat_at < cutoff,)
    return sum(end_lost_run(session, run_id, "WORKER_LOST", message, noticed_by="reconciler", where=still_stale)
               for run_id in lost)


def reconcile(session: Session, grace_seconds: float = GRACE_SECONDS) -> ReconcileReport:
    """Re-enqueue pending runs and re-schedule waiting runs whose jobs are gone from Redis; end lost runs."""
    report = ReconcileReport(lost=end_lost_runs(session, current_app.config["STALE_RUN_SECONDS"]))
    cutoff = utcnow() - timedelta(seconds=grace_seconds)
    pending = session.execute(
        sa.select(Run.id, Run.attempt, Run.queue, Run.not_before, Run.job_timeout_seconds)
        .where(Run.status == RunStatus.PENDING.value, Run.queued_at < cutoff)
        .order_by(Run.id)
        .limit(BATCH)
    )
    now = utcnow()
    for run_id, attempt, queue, not_before, timeout in pending:
        if _job_alive(execute_job_id(run_id, attempt)):
            continue
        if not_before is not None and not_before > now:
            # A replay set for later goes back to rq-scheduler for its time, never onto a queue early.
            schedule_execute(run_id, queue, attempt, not_before, timeout)
            report.rescheduled += 1
        else:
            enqueue_execute(run_id, queue, attempt, timeout)
            report.requeued += 1
    waiting = session.execute(
        sa.select(Run.id, Run.queue, StepRun.id, StepRun.resume_at, Run.job_timeout_seconds)
        .join(StepRun, sa.and_(StepRun.run_id == Run.id, StepRun.status == StepStatus.WAITING.value))
        .where(Run.status == RunStatus.WAITING.value)
        .order_by(Run.id)
        .limit(BATCH)
    )
    for run_id, queue, step_run_id, resume_at, timeout in waiting:
        if not _job_alive(resume_job_id(run_id, step_run_id)):
            schedule_resume(run_id, queue, step_run_id, max(resume_at, utcnow()), timeout)
            report.rescheduled += 1
    report.rescheduled += _reconcile_approvals(session)
    return report


def _reconcile_approvals(session: Session) -> int:
    """Schedule again the timeouts of undecided approvals, and enqueue again the resumes of approved runs, whose
    jobs are gone; returns how many."""
    count = 0
    undecided = session.execute(
        sa.select(Run.id, Run.queue, StepRun.id, StepRun.approval_due_at)
        .join(StepRun, sa.and_(StepRun.run_id == Run.id,
                               StepRun.status == StepStatus.WAITING_FOR_APPROVAL.value))
        .where(Run.status == RunStatus.WAITING_FOR_APPROVAL.value)
        .order_by(Run.id)
        .limit(BATCH)
    )
    for run_id, queue, step_run_id, due in undecided:
        if due is not None and not _job_alive(approval_timeout_job_id(run_id, step_run_id)):
            schedule_approval_timeout(run_id, queue, step_run_id, max(due, utcnow()))
            count += 1
    # An approved run waits for its resume with no step waiting: its newest step run is the approved approval.
    newest = sa.select(sa.func.max(StepRun.id)).where(StepRun.run_id == Run.id).correlate(Run).scalar_subquery()
    approved = session.execute(
        sa.select(Run.id, Run.queue, StepRun.id, Run.job_timeout_seconds)
        .join(StepRun, StepRun.id == newest)
        .where(Run.status == RunStatus.WAITING.value, StepRun.step_type == "approval",
               StepRun.status == StepStatus.COMPLETED.value)
        .order_by(Run.id)
        .limit(BATCH)
    )
    for run_id, queue, step_run_id, timeout in approved:
        if not _job_alive(resume_job_id(run_id, step_run_id)):
            enqueue_resume(run_id, queue, step_run_id, timeout)
            count += 1
    return count
