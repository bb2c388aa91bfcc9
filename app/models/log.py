"""The job log: append-only lines written by workers."""
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import BigId, JSONType
from app.timeutil import utcnow
from app.vocabulary import LogLevel


# Search indexes only PostgreSQL has (migration d5e6f7a8b9c0): trigrams of the message for text search (ILIKE
# '%...%') and the metadata as jsonb_path_ops for `name:value` (containment). The migration makes them; they are
# not declared below (a GIN index has no SQLite form), so comparing models with migrations leaves them out.
POSTGRESQL_ONLY_INDEXES = frozenset({"ix_log_entries_message_trgm", "ix_log_entries_meta_path"})


class LogEntry(db.Model):
    __tablename__ = "log_entries"
    __table_args__ = (
        sa.Index("ix_log_entries_run_id_id", "run_id", "id"),
        sa.Index("ix_log_entries_run_id_level_rank_id", "run_id", "level_rank", "id"),
        # Partial: most lines have no record key, and a run's own lines no step run; they get no entry.
        sa.Index("ix_log_entries_record_key", "record_key", postgresql_where=sa.text("record_key IS NOT NULL"),
                 sqlite_where=sa.text("record_key IS NOT NULL")),
        # Deleting a step run (retention) sets its lines' step_run_id to NULL: a lookup, not a scan of the log.
        sa.Index("ix_log_entries_step_run_id", "step_run_id", postgresql_where=sa.text("step_run_id IS NOT NULL"),
                 sqlite_where=sa.text("step_run_id IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(sa.ForeignKey("runs.id", ondelete="CASCADE"))
    step_run_id: Mapped[int | None] = mapped_column(sa.ForeignKey("step_runs.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    level: Mapped[str] = mapped_column(sa.String(10))  # a LogLevel value
    # Numeric level so "warning and above" is an index range, not an IN list.
    level_rank: Mapped[int] = mapped_column(sa.SmallInteger)
    record_key: Mapped[str | None] = mapped_column(sa.String(120))
    message: Mapped[str] = mapped_column(sa.Text)
    meta: Mapped[dict | None] = mapped_column(JSONType)
    technical: Mapped[bool] = mapped_column(default=False)

    @classmethod
    def line(cls, run_id: int, level: LogLevel | str, message: str, **fields) -> "LogEntry":
        """A log line of `level` for a run, with its level rank filled in."""
        level = LogLevel(level)
        return cls(run_id=run_id, level=level.value, level_rank=level.rank, message=message,
                   created_at=utcnow(), **fields)
