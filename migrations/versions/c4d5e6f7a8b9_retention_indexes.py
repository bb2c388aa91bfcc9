"""indexes for retention: runs by status and finish time, replays by source, log lines by step run

Retention finds finished runs by status and finished_at. Deleting a run makes the database look for replays that
point at it (replay_of_id, ON DELETE SET NULL), and deleting a step run for log lines that point at it
(step_run_id, ON DELETE SET NULL): without these indexes each deleted row would scan runs or the whole log.

Revision ID: c4d5e6f7a8b9
Revises: c4d2e6f7a8b9
Create Date: 2026-11-22 00:30:00

"""
from alembic import op

revision = "c4d5e6f7a8b9"
down_revision = "c4d2e6f7a8b9"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("runs") as batch:
        batch.create_index("ix_runs_status_finished_at", ["status", "finished_at"], unique=False)
        batch.create_index("ix_runs_replay_of_id", ["replay_of_id"], unique=False)
    with op.batch_alter_table("log_entries") as batch:
        batch.create_index("ix_log_entries_step_run_id", ["step_run_id"], unique=False)


def downgrade():
    with op.batch_alter_table("log_entries") as batch:
        batch.drop_index("ix_log_entries_step_run_id")
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_replay_of_id")
        batch.drop_index("ix_runs_status_finished_at")
