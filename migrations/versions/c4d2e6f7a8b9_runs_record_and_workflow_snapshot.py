"""runs: record_key (the context record's key) and a snapshot of the workflow's key and name

Revision ID: c4d2e6f7a8b9
Revises: b3c1d2e4f5a6
Create Date: 2026-11-22 00:50:00

"""
import sqlalchemy as sa
from alembic import op

revision = "c4d2e6f7a8b9"
down_revision = "b3c1d2e4f5a6"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("workflow_key", sa.String(length=80), nullable=True))
        batch.add_column(sa.Column("workflow_name", sa.String(length=120), nullable=True))
        batch.add_column(sa.Column("record_key", sa.String(length=120), nullable=True))
    op.execute(
        "UPDATE runs SET workflow_key = (SELECT key FROM workflows WHERE workflows.id = runs.workflow_id), "
        "workflow_name = (SELECT name FROM workflows WHERE workflows.id = runs.workflow_id)"
    )
    with op.batch_alter_table("runs") as batch:
        batch.alter_column("workflow_key", existing_type=sa.String(length=80), nullable=False)
        batch.alter_column("workflow_name", existing_type=sa.String(length=120), nullable=False)
        batch.create_index("ix_runs_record_key_id", ["record_key", "id"])
        batch.create_index("ix_runs_queued_at", ["queued_at"])


def downgrade():
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_queued_at")
        batch.drop_index("ix_runs_record_key_id")
        batch.drop_column("record_key")
        batch.drop_column("workflow_name")
        batch.drop_column("workflow_key")
