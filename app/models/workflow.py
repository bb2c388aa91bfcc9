"""Workflows, their saved versions (every save is one) and the pointer to the published one."""
import json
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.engine.limits import MAX_NODES, versioned_part
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
    # The working copy the editor changes; a save makes it a new version (see has_unsaved_changes). Read when first
    # used, not with every workflow a list loads: it is tens of KB of JSON for a workflow of many steps.
    draft_definition: Mapped[dict] = mapped_column(JSONType, deferred=True)
    published_version_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("workflow_versions.id", use_alter=True, ondelete="SET NULL")
    )
    # Settings: live as soon as they change (audited, not versioned; each new version keeps a copy in `settings`).
    timeout_seconds: Mapped[int | None]  # the RQ job timeout of a run's job; None = the configured default
    max_runtime_seconds: Mapped[int | None]  # a run that takes longer ends as an error (None = no limit)
    max_actions: Mapped[int | None]  # steps a run may execute before it ends as an error (None = no limit)
    max_nodes: Mapped[int] = mapped_column(default=MAX_NODES, server_default=sa.text(str(MAX_NODES)))
    archived_at: Mapped[datetime | None]  # archived: hidden from the lists, not runnable; runs and logs stay
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
    def is_archived(self) -> bool:
        """Whether the workflow was archived: kept for its runs and logs, never run again."""
        return self.archived_at is not None

    @property
    def can_run(self) -> bool:
        """Whether a run may start now: published, enabled and not archived (who may start it is the policy's
        business)."""
        return self.is_published and self.enabled and not self.is_archived

    @property
    def latest_version(self) -> "WorkflowVersion | None":
        """The newest saved version (the highest number): read alone, not with every version a busy workflow has
        (unless they are loaded already)."""
        session = sa.orm.object_session(self)
        if "versions" in self.__dict__ or session is None or self.id is None:
            return self.versions[-1] if self.versions else None
        return session.scalar(
            sa.select(WorkflowVersion).where(WorkflowVersion.workflow_id == self.id)
            .order_by(WorkflowVersion.number.desc()).limit(1)
        )

    @property
    def has_unsaved_changes(self) -> bool:
        """Whether the working copy differs from the newest saved version (the editor's "unsaved changes"); the
        settings a document may carry (queue, allowed_roles, settings) are not versioned and do not count."""
        latest = self.latest_version
        if latest is None:
            return True
        working = self.draft_definition if isinstance(self.draft_definition, dict) else {}
        return not same_document(versioned_part(latest.definition), versioned_part(working))

    @property
    def has_unpublished_changes(self) -> bool:
        """Whether what would be published next differs from what runs: a version saved after the published one,
        or a working copy not saved yet."""
        latest = self.latest_version
        if latest is None:
            return True
        return latest.id != self.published_version_id or self.has_unsaved_changes

    @property
    def settings(self) -> dict:
        """The settings as a version keeps a copy of them."""
        return {"queue": self.queue, "timeout_seconds": self.timeout_seconds,
                "max_runtime_seconds": self.max_runtime_seconds, "max_actions": self.max_actions,
                "max_nodes": self.max_nodes, "allowed_roles": self.allowed_roles}


def same_document(a: dict | None, b: dict | None) -> bool:
    """Whether two definition documents hold the same JSON (key order aside)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


MAX_VERSION_NUMBER = 2**31 - 1  # `number` is a 32-bit INTEGER: a larger one (from a URL) names no version


class WorkflowVersion(db.Model):
    __tablename__ = "workflow_versions"
    __table_args__ = (sa.UniqueConstraint("workflow_id", "number", name="uq_workflow_versions_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workflow_id: Mapped[int] = mapped_column(sa.ForeignKey("workflows.id", ondelete="CASCADE"))
    number: Mapped[int]
    definition: Mapped[dict] = mapped_column(JSONType)
    summary: Mapped[str] = mapped_column(sa.String(255), default="")
    settings: Mapped[dict | None] = mapped_column(JSONType)  # the workflow's settings when it was saved
    restored_from: Mapped[int | None]  # the number of the version this one copies, when it was a restore
    author_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    workflow: Mapped[Workflow] = relationship(back_populates="versions", foreign_keys=[workflow_id])
    author: Mapped["User | None"] = relationship(foreign_keys=[author_id])  # noqa: F821

    @property
    def label(self) -> str:
        return f"v{self.number}"
