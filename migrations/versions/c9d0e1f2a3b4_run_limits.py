"""runs: the job timeout and safety limits an attempt was queued with, and what it has used of them

Revision ID: c9d0e1f2a3b4
Revises: b7c8d9e0f1a2
"""
import sqlalchemy as sa
from alembic import op

revision = "c9d0e1f2a3b4"
down_revision = "b7c8d9e0f1a2"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("job_timeout_seconds", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("max_runtime_seconds", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("max_actions", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("executed_seconds", sa.Float(), nullable=False, server_default=sa.text("0")))
        batch.add_column(sa.Column("actions_taken", sa.Integer(), nullable=False, server_default=sa.text("0")))


def downgrade():
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("actions_taken")
        batch.drop_column("executed_seconds")
        batch.drop_column("max_actions")
        batch.drop_column("max_runtime_seconds")
        batch.drop_column("job_timeout_seconds")
