"""runs: covering indexes on the date window (all workflows, per workflow, per status) for the history counts

The runs lists count what a filter selects in a date window, up to 10,001. With only (queued_at), PostgreSQL read
every run of the window from the table to check its status and workflow (about 100 ms for one workflow's 30 days
at a million runs). (queued_at), (workflow_id, queued_at) and (status, queued_at), each carrying the filtered
columns (INCLUDE, on PostgreSQL), let it count from an index alone. The first replaces ix_runs_queued_at.

Revision ID: e6f7a8b9c0d1
Revises: d5e6f7a8b9c0
Create Date: 2026-11-22 03:55:00

"""
from alembic import op

revision = "e6f7a8b9c0d1"
down_revision = "d5e6f7a8b9c0"
branch_labels = None
depends_on = None

FILTERED = ["workflow_id", "status", "trigger", "queue", "version_id"]


def upgrade():
    with op.batch_alter_table("runs") as batch:
        batch.create_index("ix_runs_queued_at_covering", ["queued_at"], unique=False, postgresql_include=FILTERED)
        batch.create_index("ix_runs_workflow_id_queued_at", ["workflow_id", "queued_at"], unique=False,
                           postgresql_include=[c for c in FILTERED if c != "workflow_id"])
        batch.create_index("ix_runs_status_queued_at", ["status", "queued_at"], unique=False,
                           postgresql_include=[c for c in FILTERED if c != "status"])
        batch.drop_index("ix_runs_queued_at")


def downgrade():
    with op.batch_alter_table("runs") as batch:
        batch.create_index("ix_runs_queued_at", ["queued_at"], unique=False)
        batch.drop_index("ix_runs_status_queued_at")
        batch.drop_index("ix_runs_workflow_id_queued_at")
        batch.drop_index("ix_runs_queued_at_covering")
