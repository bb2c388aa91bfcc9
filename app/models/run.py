"""Runs of a workflow and the step runs they are made of."""
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.engine.states import ACTIVE, FINISHED, STEP_FINISHED, RunStatus, StepStatus, Verdict
from app.extensions import db
from app.models.types import BigId, JSONType
from app.timeutil import utcnow
from app.vocabulary import Trigger


FILTERED_COLUMNS = ["workflow_id", "status", "trigger", "queue", "version_id"]


class Run(db.Model):
    __tablename__ = "runs"
    __table_args__ = (
        sa.Index("ix_runs_workflow_id_id", "workflow_id", "id"),
        sa.Index("ix_runs_status_id", "status", "id"),
        # Retention finds finished runs by when they finished; deleting a run looks up the replays that point at it.
        sa.Index("ix_runs_status_finished_at", "status", "finished_at"),
        sa.Index("ix_runs_replay_of_id", "replay_of_id", postgresql_where=sa.text("replay_of_id IS NOT NULL"),
                 sqlite_where=sa.text("replay_of_id IS NOT NULL")),
        sa.UniqueConstraint("workflow_id", "idempotency_key", name="uq_runs_idempotency_key"),
        # Partial (like the one above): most runs have no record key and are no replay, and each of a run's three
        # writes (start, claim, ending) would add an entry for nothing to both.
        sa.Index("ix_runs_record_key_id", "record_key", "id", postgresql_where=sa.text("record_key IS NOT NULL"),
                 sqlite_where=sa.text("record_key IS NOT NULL")),
        # The history lists count what a filter selects in a date window (up to 10,001): these let PostgreSQL count
        # from an index alone, over all workflows, one workflow or some statuses, whatever else is chosen.
        sa.Index("ix_runs_queued_at_covering", "queued_at", postgresql_include=FILTERED_COLUMNS),
        sa.Index("ix_runs_workflow_id_queued_at", "workflow_id", "queued_at",
                 postgresql_include=[c for c in FILTERED_COLUMNS if c != "workflow_id"]),
        sa.Index("ix_runs_status_queued_at", "status", "queued_at",
                 postgresql_include=[c for c in FILTERED_COLUMNS if c != "status"]),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workflow_id: Mapped[int] = mapped_column(sa.ForeignKey("workflows.id", ondelete="CASCADE"))
    version_id: Mapped[int] = mapped_column(sa.ForeignKey("workflow_versions.id"))
    # What the workflow was called when the run started: history reads right after a rename.
    workflow_key: Mapped[str] = mapped_column(sa.String(80), default="")
    workflow_name: Mapped[str] = mapped_column(sa.String(120), default="")
    status: Mapped[str] = mapped_column(sa.String(32), default=RunStatus.PENDING.value)
    trigger: Mapped[str] = mapped_column(sa.String(20), default=Trigger.MANUAL.value)  # a Trigger
    triggered_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    trigger_detail: Mapped[str] = mapped_column(sa.String(255), default="")
    queue: Mapped[str] = mapped_column(sa.String(80), default="default")
    params: Mapped[dict] = mapped_column(JSONType, default=dict)
    selected_keys: Mapped[list | None] = mapped_column(JSONType)
    # The record the run is about (`{"key": "INV-2291", ...}`), visible to placeholders as `record`.
    context: Mapped[dict | None] = mapped_column(JSONType)
    record_key: Mapped[str | None] = mapped_column(sa.String(120))
    replay_of_id: Mapped[int | None] = mapped_column(sa.ForeignKey("runs.id", ondelete="SET NULL"))
    # A replay set for later: rq-scheduler queues it at this time (naive UTC); until then it is pending, scheduled.
    not_before: Mapped[datetime | None]
    attempt: Mapped[int] = mapped_column(default=1)
    # The step the run resumes at (after a wait, or on retry); None means the first step.
    cursor: Mapped[str | None] = mapped_column(sa.String(80))
    progress_done: Mapped[int] = mapped_column(default=0)
    progress_total: Mapped[int] = mapped_column(default=0)
    queued_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    cancel_requested_at: Mapped[datetime | None]
    cancelled_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    dry_run: Mapped[bool] = mapped_column(default=False)
    error_code: Mapped[str | None] = mapped_column(sa.String(80))
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    result: Mapped[dict | None] = mapped_column(JSONType)
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(120))
    # The workflow's job timeout and safety limits as they were when this attempt was queued (None: the configured
    # job timeout, no limit), and what the attempt has used of them so far: seconds executing (time parked on a wait,
    # an approval or a retry's backoff not counted) and steps executed.
    job_timeout_seconds: Mapped[int | None]
    max_runtime_seconds: Mapped[int | None]
    max_actions: Mapped[int | None]
    executed_seconds: Mapped[float] = mapped_column(sa.Float, default=0.0, server_default=sa.text("0"))
    actions_taken: Mapped[int] = mapped_column(default=0, server_default=sa.text("0"))

    workflow = relationship("Workflow")
    version = relationship("WorkflowVersion")
    triggered_by = relationship("User", foreign_keys=[triggered_by_id])
    steps: Mapped[list["StepRun"]] = relationship(back_populates="run", order_by="StepRun.id")
    # Earlier attempts, as they ended; the current attempt is the run itself.
    earlier_attempts: Mapped[list["RunAttempt"]] = relationship(
        back_populates="run", order_by="RunAttempt.number", cascade="all, delete-orphan", passive_deletes=True)
    replay_of: Mapped["Run | None"] = relationship(remote_side=[id], back_populates="replays")
    # The runs replaying this one, oldest first (ix_runs_replay_of_id); the database nulls their link on delete.
    replays: Mapped[list["Run"]] = relationship(back_populates="replay_of", order_by="Run.id", passive_deletes=True)

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    @property
    def is_active(self) -> bool:
        """Pending, running or waiting: the run's page and log still change."""
        return self.status in ACTIVE

    @property
    def is_scheduled(self) -> bool:
        """Pending until a time still to come (a replay set for later): rq-scheduler queues it then."""
        return self.status == RunStatus.PENDING and self.not_before is not None and self.not_before > utcnow()

    @property
    def percent(self) -> int:
        if self.status == RunStatus.COMPLETED:
            return 100
        if not self.progress_total:
            return 0
        return min(100, round(100 * self.progress_done / self.progress_total))

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or utcnow()
        return max(0.0, (end - self.started_at).total_seconds())


class StepRun(db.Model):
    __tablename__ = "step_runs"
    __table_args__ = (
        sa.Index("ix_step_runs_run_id_id", "run_id", "id"),
        # "Waiting for me" and its count in the navigation read only the approvals nobody has decided on yet.
        sa.Index("ix_step_runs_waiting_for_approval", "id",
                 sqlite_where=sa.text("status = 'waiting_for_approval'"),
                 postgresql_where=sa.text("status = 'waiting_for_approval'")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(sa.ForeignKey("runs.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(default=1)
    item_key: Mapped[str | None] = mapped_column(sa.String(120))
    step_key: Mapped[str] = mapped_column(sa.String(80))
    step_type: Mapped[str] = mapped_column(sa.String(40))
    step_name: Mapped[str] = mapped_column(sa.String(120))
    status: Mapped[str] = mapped_column(sa.String(20))
    scheduled_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    input: Mapped[dict | None] = mapped_column(JSONType)
    output: Mapped[dict | None] = mapped_column(JSONType)
    error_code: Mapped[str | None] = mapped_column(sa.String(80))
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    traceback: Mapped[str | None] = mapped_column(sa.Text)
    suggested_fix: Mapped[str | None] = mapped_column(sa.Text)
    branch: Mapped[str | None] = mapped_column(sa.String(80))
    resume_at: Mapped[datetime | None]
    resumed_at: Mapped[datetime | None]
    retries: Mapped[int] = mapped_column(default=0)
    # An approval step: what it asks, who may decide ("manager,admin"), whether the run's starter may, and by when.
    approval_message: Mapped[str | None] = mapped_column(sa.Text)
    approval_roles: Mapped[str | None] = mapped_column(sa.String(255))
    approval_self_allowed: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    approval_due_at: Mapped[datetime | None]
    # The decision (H5): approved, rejected or timed_out; who decided (as they were called then), when, and why.
    decision: Mapped[str | None] = mapped_column(sa.String(20))
    decided_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    decided_by: Mapped[str | None] = mapped_column(sa.String(255))
    decided_at: Mapped[datetime | None]
    decision_comment: Mapped[str | None] = mapped_column(sa.Text)

    run: Mapped[Run] = relationship(back_populates="steps")

    @property
    def is_finished(self) -> bool:
        """Whether the step is done for good (completed, failed or cancelled): its input and output never change."""
        return self.status in STEP_FINISHED

    @property
    def awaits_decision(self) -> bool:
        """An approval step nobody has approved or rejected yet."""
        return self.status == StepStatus.WAITING_FOR_APPROVAL

    @property
    def approver_roles(self) -> list[str]:
        """The roles that may decide on this approval step."""
        return [role for role in (self.approval_roles or "").split(",") if role]

    @property
    def approvers(self) -> str:
        """Who may decide, as a person reads it: "managers or admins"."""
        names = [f"{role}s" for role in self.approver_roles]
        return " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names) or "nobody"

    @property
    def verdict(self) -> Verdict | None:
        """What was decided on this approval step, once someone (or the timeout) did."""
        return Verdict(self.decision) if self.decision else None

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, (self.finished_at - self.started_at).total_seconds())


class RunAttempt(db.Model):
    """An attempt of a run that a retry replaced: which version it ran, who started it, when, and how it ended.
    The run's own columns describe its current attempt."""

    __tablename__ = "run_attempts"
    __table_args__ = (sa.UniqueConstraint("run_id", "number", name="uq_run_attempts_run_id_number"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(sa.ForeignKey("runs.id", ondelete="CASCADE"))
    number: Mapped[int]
    version_id: Mapped[int] = mapped_column(sa.ForeignKey("workflow_versions.id"))
    trigger_detail: Mapped[str] = mapped_column(sa.String(255), default="")
    status: Mapped[str] = mapped_column(sa.String(32))
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error_code: Mapped[str | None] = mapped_column(sa.String(80))
    error_message: Mapped[str | None] = mapped_column(sa.Text)

    run: Mapped[Run] = relationship(back_populates="earlier_attempts")
    version = relationship("WorkflowVersion")
