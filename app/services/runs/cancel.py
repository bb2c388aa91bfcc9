"""Cancelling runs: at once when pending or parked, between steps when running."""
from dataclasses import dataclass
from enum import Enum

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.engine.states import CANCELLABLE, RunStatus, StepStatus
from app.models import Run, StepRun, User
from app.security import Capability, can
from app.services.audit import AuditAction
from app.services.dispatch import after_commit
from app.services.errors import PermissionDenied
from app.services.execution.queueing import unschedule_cancelled
from app.services.lifecycle import change_status, note
from app.timeutil import utcnow
from app.vocabulary import LogLevel


class CancelOutcome(str, Enum):
    CANCELLED = "cancelled"  # stopped at once (it was pending or parked)
    REQUESTED = "requested"  # running: the worker stops it after the current step
    FINISHED = "finished"  # it had already finished; nothing changed


@dataclass
class CancelResult:
    """What a cancel did, and the run's status afterwards."""

    outcome: CancelOutcome
    status: RunStatus


def cancel_run(session: Session, run: Run, user: User) -> CancelResult:
    """Cancel a pending or waiting run at once, or ask the worker to stop a running one between steps."""
    if not can(user, Capability.CANCEL_RUN):
        raise PermissionDenied("Your role cannot cancel runs.")
    now = utcnow()
    for _ in range(3):
        status = RunStatus(session.scalar(sa.select(Run.status).where(Run.id == run.id)))
        if status == RunStatus.RUNNING:
            if _request_cancel(session, run.id, user, now):
                return CancelResult(CancelOutcome.REQUESTED, status)
        elif status in CANCELLABLE:
            change = change_status(
                session, run.id, RunStatus.CANCELLED, only_from=[status], actor=user, action=AuditAction.CANCEL_RUN,
                level=LogLevel.WARNING, message=f"Run cancelled by {user.email}",
                finished_at=now, cancel_requested_at=now, cancelled_by_id=user.id,
            )
            if change.changed:
                waiting = session.scalars(
                    sa.update(StepRun)
                    .where(StepRun.run_id == run.id,
                           StepRun.status.in_([StepStatus.WAITING.value, StepStatus.WAITING_FOR_APPROVAL.value]))
                    .values(status=StepStatus.CANCELLED.value, finished_at=now)
                    .returning(StepRun.id)
                    .execution_options(synchronize_session=False)
                ).all()
                run_id, attempt = run.id, run.attempt
                after_commit(session, lambda: unschedule_cancelled(run_id, attempt, waiting))
                return CancelResult(CancelOutcome.CANCELLED, change.new)
        else:
            return CancelResult(CancelOutcome.FINISHED, status)
    status = RunStatus(session.scalar(sa.select(Run.status).where(Run.id == run.id)))
    return CancelResult(CancelOutcome.FINISHED, status)


def _request_cancel(session: Session, run_id: int, user: User, now) -> bool:
    """Ask the worker running `run_id` to stop after its current step; False if it is no longer running."""
    result = session.execute(
        sa.update(Run)
        .where(Run.id == run_id, Run.status == RunStatus.RUNNING.value)
        .values(cancel_requested_at=now, cancelled_by_id=user.id)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return False
    note(session, run_id, actor=user, action=AuditAction.REQUEST_CANCEL, level=LogLevel.WARNING,
         message=f"Cancel requested by {user.email}; stopping after the current step",
         changes={"cancel_requested_at": [None, now.isoformat(timespec="seconds")]})
    return True
