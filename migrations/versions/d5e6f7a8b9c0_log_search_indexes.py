"""log search indexes on PostgreSQL: message trigrams (text search) and metadata paths (name:value)

A search within a run's log for a word that few lines hold would otherwise walk all of the run's lines (a million
in a big run). pg_trgm's GIN index answers `message ILIKE '%word%'` and a jsonb_path_ops GIN index answers
`meta @> '{"invoice_id": "INV-2291"}'`. pg_trgm is a contrib extension: when the database user may not create it,
the migration says so and goes on without the trigram index (text search still works, only slower). SQLite has
neither index; its searches read the run's lines.

On a large existing log, build these by hand first with CREATE INDEX CONCURRENTLY (same names), then upgrade.

Revision ID: d5e6f7a8b9c0
Revises: c4d5e6f7a8b9
Create Date: 2026-11-22 03:20:00

"""
import logging

import sqlalchemy as sa
from alembic import op

revision = "d5e6f7a8b9c0"
down_revision = "c4d5e6f7a8b9"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")


def _trigram_schema(bind) -> str | None:
    """The schema pg_trgm lives in, creating the extension when it is missing; None when it cannot be created."""
    find = sa.text("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                   "WHERE e.extname = 'pg_trgm'")
    schema = bind.execute(find).scalar()
    if schema is None:
        try:
            with bind.begin_nested():
                # In public when there is one: created in the app's own schema, the extension (and with it this
                # index in every other schema) would go whenever that schema is dropped with CASCADE.
                public = bind.execute(sa.text("SELECT 1 FROM pg_namespace WHERE nspname = 'public'")).scalar()
                where = " WITH SCHEMA public" if public else ""
                bind.execute(sa.text(f"CREATE EXTENSION IF NOT EXISTS pg_trgm{where}"))
        except sa.exc.DBAPIError as exc:
            log.warning("pg_trgm could not be created (%s); log text search will work without its index",
                        str(exc.orig).strip().splitlines()[0])
            return None
        schema = bind.execute(find).scalar()
    return schema


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute("CREATE INDEX IF NOT EXISTS ix_log_entries_meta_path ON log_entries USING gin (meta jsonb_path_ops)")
    schema = _trigram_schema(bind)
    if schema is not None:
        op.execute(f'CREATE INDEX IF NOT EXISTS ix_log_entries_message_trgm ON log_entries '
                   f'USING gin (message "{schema}".gin_trgm_ops)')


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_log_entries_message_trgm")
    op.execute("DROP INDEX IF EXISTS ix_log_entries_meta_path")
