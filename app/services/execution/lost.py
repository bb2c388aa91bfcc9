"""Runs whose job died mid-run (killed, timed out, crashed, or its host lost): they end as errors."""
import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.engine.states import RunStatus, StepStatus
from app.models import StepRun
from app.services.audit import AuditAction
from app.services.lifecycle import change_status
from app.timeutil import utcnow
from app.vocabulary import LogLevel


def end_lost_run(session: Session, run_id: int, code: str, message: str, *, noticed_by: str, where=()) -> bool:
    """End a run whose job died mid-run: the run and its running step become errors with `code`; completed
    steps stay completed. `noticed_by` names the process that noticed (the audit row's actor). Returns
    whether the run was running (and matched the extra `where` criteria)."""
    now = utcnow()
    change = change_status(
        session, run_id, RunStatus.ERROR, only_from=[RunStatus.RUNNING], where=where,
        actor=noticed_by, action=AuditAction.END_LOST_RUN, level=LogLevel.ERROR, message=f"[{code}] {message}",
        finished_at=now, error_code=code, error_message=message,
    )
    if not change.changed:
        return False
    session.execute(
        sa.update(StepRun)
        .where(StepRun.run_id == run_id, StepRun.status == StepStatus.RUNNING.value)
        .values(status=StepStatus.FAILED.value, finished_at=now, error_code=code, error_message=message)
        .execution_options(synchronize_session=False)
    )
    return True
