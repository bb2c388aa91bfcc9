"""The audit log: who did what to which thing, and which fields changed. Append-only."""
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import BigId, JSONType
from app.timeutil import utcnow


class AuditEvent(db.Model):
    __tablename__ = "audit_events"
    __table_args__ = (sa.Index("ix_audit_events_entity_type_entity_id_id", "entity_type", "entity_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The person who acted, if a person did; `actor` says who as it read then (an email, or the process that
    # acted, such as "reconciler"), so the row still reads after the user is deleted.
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(sa.String(255))
    entity_type: Mapped[str] = mapped_column(sa.String(40))  # an AuditEntity
    entity_id: Mapped[int] = mapped_column(sa.BigInteger)
    action: Mapped[str] = mapped_column(sa.String(40))  # an AuditAction
    # Field-level changes: {"status": ["running", "error"], ...} (before, after).
    changes: Mapped[dict] = mapped_column(JSONType, default=dict)
