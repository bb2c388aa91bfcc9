"""step_runs: approval steps (what they ask, who may decide, by when) and their decisions (who, when, comment)

Revision ID: a9b0c1d2e3f4
Revises: b6e2d9f4a1c7
Create Date: 2026-11-22 05:30:00

"""
import sqlalchemy as sa
from alembic import op

revision = "a9b0c1d2e3f4"
down_revision = "b6e2d9f4a1c7"
branch_labels = None
depends_on = None

WAITING = sa.text("status = 'waiting_for_approval'")


def upgrade():
    with op.batch_alter_table("step_runs") as batch:
        batch.add_column(sa.Column("approval_message", sa.Text(), nullable=True))
        batch.add_column(sa.Column("approval_roles", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("approval_self_allowed", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column("approval_due_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("decision", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("decided_by_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("decided_by", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("decided_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("decision_comment", sa.Text(), nullable=True))
        batch.create_foreign_key(op.f("fk_step_runs_decided_by_id_users"), "users", ["decided_by_id"], ["id"],
                                 ondelete="SET NULL")
    op.create_index("ix_step_runs_waiting_for_approval", "step_runs", ["id"], unique=False,
                    sqlite_where=WAITING, postgresql_where=WAITING)


def downgrade():
    op.drop_index("ix_step_runs_waiting_for_approval", table_name="step_runs")
    with op.batch_alter_table("step_runs") as batch:
        batch.drop_constraint(op.f("fk_step_runs_decided_by_id_users"), type_="foreignkey")
        for column in ("decision_comment", "decided_at", "decided_by", "decided_by_id", "decision", "approval_due_at",
                       "approval_self_allowed", "approval_roles", "approval_message"):
            batch.drop_column(column)
