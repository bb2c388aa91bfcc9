"""workflows: job settings and safety limits (timeout, max runtime, max actions, max nodes), archived_at;
workflow_versions: the settings each version was saved with, and which version a restore copied

Revision ID: b7c8d9e0f1a2
Revises: a9b0c1d2e3f4
Create Date: 2026-11-22 07:20:00

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "b7c8d9e0f1a2"
down_revision = "a9b0c1d2e3f4"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade():
    with op.batch_alter_table("workflows") as batch:
        batch.add_column(sa.Column("timeout_seconds", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("max_runtime_seconds", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("max_actions", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("max_nodes", sa.Integer(), server_default=sa.text("200"), nullable=False))
        batch.add_column(sa.Column("archived_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("workflow_versions") as batch:
        batch.add_column(sa.Column("settings", JSON, nullable=True))
        batch.add_column(sa.Column("restored_from", sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table("workflow_versions") as batch:
        batch.drop_column("restored_from")
        batch.drop_column("settings")
    with op.batch_alter_table("workflows") as batch:
        for column in ("archived_at", "max_nodes", "max_actions", "max_runtime_seconds", "timeout_seconds"):
            batch.drop_column(column)
