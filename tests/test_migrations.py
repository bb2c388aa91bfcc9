"""Migrations and models agree, on whichever database the suite runs on."""
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
