"""partial indexes: runs by replay source and record key, log lines by record key and step run, only where set

Most runs are no replay and have no record key; a run's own log lines have no step run, and most lines no record key.
Their entries in these four indexes served no lookup (every lookup asks for a value), and a run's three writes
(start, claim, ending) and each of its lines paid for them. Where the column is NULL the row now has no entry.

Revision ID: d8e9f0a1b2c3
Revises: c9d0e1f2a3b4
"""
import sqlalchemy as sa
from alembic import op

revision = "d8e9f0a1b2c3"
down_revision = "c9d0e1f2a3b4"
branch_labels = None
depends_on = None

INDEXES = [
    ("runs", "ix_runs_replay_of_id", ["replay_of_id"], "replay_of_id"),
    ("runs", "ix_runs_record_key_id", ["record_key", "id"], "record_key"),
    ("log_entries", "ix_log_entries_record_key", ["record_key"], "record_key"),
    ("log_entries", "ix_log_entries_step_run_id", ["step_run_id"], "step_run_id"),
]


def upgrade():
    for table, name, columns, column in INDEXES:
        op.drop_index(name, table_name=table)
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(name, table, columns, postgresql_where=where, sqlite_where=where)


def downgrade():
    for table, name, columns, _column in reversed(INDEXES):
        op.drop_index(name, table_name=table)
        op.create_index(name, table, columns)
