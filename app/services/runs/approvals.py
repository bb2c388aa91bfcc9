"""Approvals: a person whose role an approval step lists approves it (the run resumes) or rejects it (the run
ends as rejected); a request nobody decided on in time is rejected with APPROVAL_TIMEOUT.

Who may decide is one rule (`refusal`), used by the pages to show or hide the buttons and by `decide` to refuse.
A decision is two conditional UPDATEs in the caller's transaction: the run leaves waiting_for_approval only if it
is still there, so of two people deciding at once one wins and the other gets a Conflict.
"""
from dataclasses import dataclass
from enum import Enum

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.engine.definition import END
from app.engine.states import RunStatus, StepStatus, Verdict
from app.models import Run, StepRun, User
from app.security import Capability, can
from app.services.audit import AuditAction
from app.services.dispatch import after_commit
from app.services.errors import Conflict, Invalid, PermissionDenied
from app.services.execution.queueing import cancel_approval_timeout, enqueue_resume
from app.services.lifecycle import StatusChange, change_status
from app.services.runs.start import definition_of
from app.timeutil import utcnow
from app.vocabulary import LogLevel

MAX_COMMENT = 2000
TIMEOUT_ACTOR = "approval timeout"  # the audit row's actor when nobody decided in time


class Decision(str, Enum):
    APPROVE = "approve"  # the run goes on at the step after the approval
    REJECT = "reject"  # the run ends as rejected


@dataclass(frozen=True)
class DecisionResult:
    """What a decision did: the step decided, what was decided, and the run's status change."""

    step_run_id: int
    step_key: str
    decision: Decision
    change: StatusChange


def waiting_approval(session: Session, run_id: int) -> StepRun | None:
    """The run's approval step that waits for a decision, if one does."""
    return session.scalars(
        sa.select(StepRun)
        .where(StepRun.run_id == run_id, StepRun.status == StepStatus.WAITING_FOR_APPROVAL.value)
        .order_by(StepRun.id.desc())
        .limit(1)
    ).first()


def refusal(user, run: Run, step: StepRun) -> str | None:
    """Why `user` may not decide on `step` of `run`, or None when they may: their role must hold APPROVE_STEP and
    be listed by the step, and the one who started the run may not unless the step allows self-approval."""
    listed = step.approver_roles
    if not can(user, Capability.APPROVE_STEP) or user.role not in listed:
        return f"Only {step.approvers} may approve or reject this step."
    if run.triggered_by_id == user.id and not step.approval_self_allowed:
        return "You started this run, so someone else must approve or reject it."
    return None


def parse_decision(value) -> Decision:
    """The decision a form or a request body names; Invalid naming `decision` otherwise."""
    try:
        return Decision(value)
    except ValueError:
        raise Invalid("Choose approve or reject.", field="decision") from None


def clean_comment(value) -> str | None:
    """The optional comment, stripped; Invalid naming `comment` when it is not text or too long."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise Invalid("The comment must be text.", field="comment")
    value = value.strip()
    if len(value) > MAX_COMMENT:
        raise Invalid(f"The comment must be at most {MAX_COMMENT} characters (it has {len(value)}).", field="comment")
    return value or None


def decide(session: Session, run: Run, user: User, decision, comment=None) -> DecisionResult:
    """Approve (the run resumes at the next step, on its queue once the caller commits) or reject (the run ends as
    rejected) the approval step `run` waits on, recording who, when and the comment, with an audit row and a job
    log line. Raises Invalid for a bad decision or comment, PermissionDenied for someone who may not decide,
    Conflict when the run no longer waits for approval."""
    if not can(user, Capability.APPROVE_STEP):
        raise PermissionDenied("Your role cannot approve or reject steps.")
    decision = parse_decision(decision)
    comment = clean_comment(comment)
    step = waiting_approval(session, run.id)
    status = RunStatus(session.scalar(sa.select(Run.status).where(Run.id == run.id)))
    if step is None or status != RunStatus.WAITING_FOR_APPROVAL:
        raise Conflict(f"Run #{run.id} is not waiting for approval: it is {status.label.lower()}.")
    reason = refusal(user, run, step)
    if reason:
        raise PermissionDenied(reason)
    now = utcnow()
    said = f": {comment}" if comment else ""
    if decision is Decision.APPROVE:
        change = change_status(
            session, run.id, RunStatus.WAITING, only_from=[RunStatus.WAITING_FOR_APPROVAL], actor=user,
            action=AuditAction.APPROVE_STEP, message=f"Step '{step.step_name}' approved by {user.email}{said}",
            cursor=_after(run, step.step_key), progress_done=Run.progress_done + 1,
        )
        verdict, step_status, error = Verdict.APPROVED, StepStatus.COMPLETED, {}
    else:
        message = f"Step '{step.step_name}' rejected by {user.email}{said}"
        error = {"error_code": "APPROVAL_REJECTED", "error_message": message}
        change = change_status(
            session, run.id, RunStatus.REJECTED, only_from=[RunStatus.WAITING_FOR_APPROVAL], actor=user,
            action=AuditAction.REJECT_STEP, level=LogLevel.WARNING, message=message, finished_at=now, **error,
        )
        verdict, step_status = Verdict.REJECTED, StepStatus.REJECTED
    if not change.changed or not _record(session, step, verdict, step_status, now, user, comment, error):
        raise Conflict(f"Run #{run.id} is no longer waiting for approval: someone decided first.")
    run_id, queue, step_run_id, step_key = run.id, run.queue, step.id, step.step_key
    timeout = run.job_timeout_seconds
    after_commit(session, lambda: cancel_approval_timeout(run_id, step_run_id))
    if decision is Decision.APPROVE:
        after_commit(session, lambda: enqueue_resume(run_id, queue, step_run_id, timeout))
    return DecisionResult(step_run_id, step_key, decision, change)


def expire_approval(session: Session, run_id: int, step_run_id: int) -> bool:
    """Reject the run if its approval step `step_run_id` is still undecided and due; returns whether it did. Run by
    the job rq-scheduler fires at the deadline, so a decided (or cancelled) approval is left as it is."""
    step = session.get(StepRun, step_run_id)
    now = utcnow()
    if step is None or step.run_id != run_id or not step.awaits_decision:
        return False
    if step.approval_due_at is not None and step.approval_due_at > now:
        return False
    waited = _waited(step)
    message = f"Nobody approved or rejected step '{step.step_name}' within {waited}, so the run was rejected."
    error = {"error_code": "APPROVAL_TIMEOUT", "error_message": message}
    change = change_status(
        session, run_id, RunStatus.REJECTED, only_from=[RunStatus.WAITING_FOR_APPROVAL], actor=TIMEOUT_ACTOR,
        action=AuditAction.APPROVAL_TIMEOUT, level=LogLevel.WARNING, message=f"[APPROVAL_TIMEOUT] {message}",
        finished_at=now, **error,
    )
    if not change.changed:
        return False
    return _record(session, step, Verdict.TIMED_OUT, StepStatus.REJECTED, now, None, None, error)


def _record(session: Session, step: StepRun, verdict: Verdict, status: StepStatus, now, user: User | None,
            comment: str | None, error: dict) -> bool:
    """Mark the approval step decided, if it still waits; returns whether it did."""
    output = {"decision": verdict.value, "decided_by": user.email if user else None, "comment": comment,
              "decided_at": now.isoformat(timespec="seconds")}
    result = session.execute(
        sa.update(StepRun)
        .where(StepRun.id == step.id, StepRun.status == StepStatus.WAITING_FOR_APPROVAL.value)
        .values(status=status.value, finished_at=now, output=output, decision=verdict.value,
                decided_by_id=user.id if user else None, decided_by=user.display_name if user else None,
                decided_at=now, decision_comment=comment, **error)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1:
        session.expire(step)
    return result.rowcount == 1


def _after(run: Run, step_key: str) -> str:
    """The step the run resumes at once `step_key` is approved (the walk's `next`; "end" when it was the last)."""
    spec = definition_of(run.version).steps.get(step_key)
    return spec.next if spec is not None else END


def _waited(step: StepRun) -> str:
    if step.approval_due_at is None or step.started_at is None:
        return "its time limit"
    seconds = round((step.approval_due_at - step.started_at).total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"
