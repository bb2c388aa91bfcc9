"""Workflows and their published versions."""
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.types import JSONType
from app.timeutil import utcnow
from app.vocabulary import Trigger, WorkflowKind, WorkflowState


class Workflow(db.Model):
    __tablename__ = "workflows"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(80), unique=True)
    name: Mapped[str] = mapped_column(sa.String(120), index=True)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    kind: Mapped[str] = mapped_column(sa.String(20), default=WorkflowKind.MANUAL.value)  # a WorkflowKind
    trigger: Mapped[str] = mapped_column(sa.String(20), default=Trigger.MANUAL.value)  # a Trigger
    state: Mapped[str] = mapped_column(sa.String(20), default=WorkflowState.DRAFT.value)  # a WorkflowState
    enabled: Mapped[bool] = mapped_column(default=True)
    queue: Mapped[str] = mapped_column(sa.String(80), default="default")
    # Roles allowed to see and run the workflow; None means every role.
    allowed_roles: Mapped[list | None] = mapped_column(JSONType)
    draft_definition: Mapped[dict] = mapped_column(JSONType)
    published_version_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("workflow_versions.id", use_alter=True, ondelete="SET NULL")
    )
    timezone: Mapped[str] = mapped_column(sa.String(64), default="UTC")
    cron: Mapped[str | None] = mapped_column(sa.String(120))
    next_run_at: Mapped[datetime | None]
    last_run_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    published_version: Mapped["WorkflowVersion | None"] = relationship(
        foreign_keys=[published_version_id], post_update=True
    )
    versions: Mapped[list["WorkflowVersion"]] = relationship(
        back_populates="workflow", foreign_keys="WorkflowVersion.workflow_id", order_by="WorkflowVersion.number"
    )

    @property
    def is_draft(self) -> bool:
        """Whether the workflow is still a draft (never published)."""
        return self.state == WorkflowState.DRAFT

    @property
    def is_published(self) -> bool:
        """Whether the workflow is published and has a version to run."""
        return self.state == WorkflowState.PUBLISHED and self.published_version_id is not None

    @property
    def is_automated(self) -> bool:
        """Whether something other than a person starts it (its `trigger` says what): the list offers no Run
        button for it, and its page says what starts it."""
        return self.kind == WorkflowKind.AUTOMATED

    @property
    def can_run(self) -> bool:
        """Whether a run may start now: published and enabled (who may start it is the policy's business)."""
        return self.is_published and self.enabled


class WorkflowVersion(db.Model):
    __tablename__ = "workflow_versions"
    __table_args__ = (sa.UniqueConstraint("workflow_id", "number", name="uq_workflow_versions_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workflow_id: Mapped[int] = mapped_column(sa.ForeignKey("workflows.id", ondelete="CASCADE"))
    number: Mapped[int]
    definition: Mapped[dict] = mapped_column(JSONType)
    summary: Mapped[str] = mapped_column(sa.String(255), default="")
    author_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    workflow: Mapped[Workflow] = relationship(back_populates="versions", foreign_keys=[workflow_id])

    @property
    def label(self) -> str:
        return f"v{self.number}"
