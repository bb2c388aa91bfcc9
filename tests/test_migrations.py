"""Migrations and models agree, on whichever database the suite runs on."""
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.extensions import db
from app.models.log import POSTGRESQL_ONLY_INDEXES


def _compared(name, type_, parent_names) -> bool:
    return not (type_ == "index" and name in POSTGRESQL_ONLY_INDEXES)


def test_models_and_migrations_agree(app):
    with app.app_context():
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": _compared})
            diff = compare_metadata(context, db.metadata)
    assert diff == [], f"models differ from migrations; run `flask db migrate`: {diff}"


def test_upgrade_and_downgrade_run_on_this_database(app):
    from flask_migrate import downgrade, upgrade

    with app.app_context():
        db.session.remove()
        downgrade(revision="base")
        upgrade()
        with db.engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() is not None


def test_pg_trgm_lives_outside_the_apps_schema(app):
    """Created in the app's own schema, pg_trgm (and every trigram index that uses it, in any schema) would be
    dropped with that schema; the migration creates it in public."""
    with app.app_context(), db.engine.connect() as conn:
        if conn.dialect.name != "postgresql":
            pytest.skip("pg_trgm is PostgreSQL's")
        where = conn.execute(sa.text("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n "
                                     "ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'")).scalar()
        if where is None:
            pytest.skip("this database user may not create pg_trgm")
        assert where != conn.execute(sa.text("SELECT current_schema()")).scalar()
        assert conn.execute(sa.text("SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() "
                                    "AND indexname = 'ix_log_entries_message_trgm'")).scalar() == 1
