"""Approvals waiting for a person's decision: the "Waiting for me" list and its count in the navigation."""
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.engine.states import RunStatus, StepStatus
from app.models import Run, StepRun, Workflow
from app.security import Capability, can, workflow_visible

LIMIT = 100  # the list shows this many, oldest first; the count in the navigation reads "99+" past it


@dataclass(frozen=True)
class WaitingApproval:
    """One approval step waiting for the user's decision, with what the list shows of its run."""

    step_run_id: int
    run_id: int
    step_name: str
    message: str | None
    roles: list[str]
    asked_at: datetime | None
    due_at: datetime | None
    workflow_key: str
    workflow_name: str
    started_by: str
    record_key: str | None


def waiting_for(session: Session, user, limit: int = LIMIT) -> list[WaitingApproval]:
    """The approvals `user` may decide on now, oldest first: their role is listed and holds APPROVE_STEP, they did
    not start the run (unless the step allows it), and they may see the workflow.

    One statement, over the partial index of undecided approvals (ix_step_runs_waiting_for_approval): it reads
    only the approvals waiting now, however many step runs there are, so the navigation can count on every page.
    """
    if not can(user, Capability.APPROVE_STEP):
        return []
    listed = (sa.literal(",") + StepRun.approval_roles + sa.literal(",")).like(f"%,{user.role},%")
    rows = session.execute(
        sa.select(StepRun.id, StepRun.run_id, StepRun.step_name, StepRun.approval_message, StepRun.approval_roles,
                  StepRun.started_at, StepRun.approval_due_at, Run.workflow_key, Run.workflow_name,
                  Run.trigger_detail, Run.record_key, Workflow.state, Workflow.published_version_id,
                  Workflow.enabled, Workflow.allowed_roles)
        .join(Run, Run.id == StepRun.run_id)
        .join(Workflow, Workflow.id == Run.workflow_id)
        .where(StepRun.status == StepStatus.WAITING_FOR_APPROVAL.value,
               Run.status == RunStatus.WAITING_FOR_APPROVAL.value, listed,
               sa.or_(StepRun.approval_self_allowed, Run.triggered_by_id.is_(None), Run.triggered_by_id != user.id))
        .order_by(StepRun.id)
        .limit(limit)
    )
    return [
        WaitingApproval(row.id, row.run_id, row.step_name, row.approval_message,
                        [r for r in (row.approval_roles or "").split(",") if r], row.started_at, row.approval_due_at,
                        row.workflow_key, row.workflow_name, row.trigger_detail, row.record_key)
        for row in rows if workflow_visible(row, user)
    ]
