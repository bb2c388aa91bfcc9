"""users.session_token: sessions and remember-me cookies end on sign-out, password change and deactivation

Revision ID: b3c1d2e4f5a6
Revises: 9a2ebb7f58b7
Create Date: 2026-11-22 00:30:00

"""
import secrets

import sqlalchemy as sa
from alembic import op

revision = "b3c1d2e4f5a6"
down_revision = "9a2ebb7f58b7"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("session_token", sa.String(length=64), nullable=True))
    users = sa.table("users", sa.column("id", sa.Integer), sa.column("session_token", sa.String))
    connection = op.get_bind()
    for (user_id,) in connection.execute(sa.select(users.c.id)).all():
        connection.execute(
            users.update().where(users.c.id == user_id).values(session_token=secrets.token_urlsafe(32))
        )
    with op.batch_alter_table("users") as batch:
        batch.alter_column("session_token", existing_type=sa.String(length=64), nullable=False)


def downgrade():
    with op.batch_alter_table("users") as batch:
        batch.drop_column("session_token")
