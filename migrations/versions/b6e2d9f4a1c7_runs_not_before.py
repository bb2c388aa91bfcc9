"""runs.not_before: a replay set for a later time stays pending, scheduled, until rq-scheduler queues it

Revision ID: b6e2d9f4a1c7
Revises: f7a8b9c0d1e2
Create Date: 2026-11-22 05:20:00

"""
import sqlalchemy as sa
from alembic import op

revision = "b6e2d9f4a1c7"
down_revision = "f7a8b9c0d1e2"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("not_before", sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("not_before")
