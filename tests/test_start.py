"""Starting runs one after another with the same workflow and user objects (as a long-lived caller does): each start
checks the database as it is now, and reads the workflow and the user in one statement instead of a refresh each."""
import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Run, User, Workflow
from app.services.errors import Conflict, PermissionDenied
from app.services.runs import start_run
from app.services.workflows import load_definition
from tests.factories import steps_workflow

NOOP = steps_workflow("held", [{"key": "a", "type": "noop"}])


def _held(make_user, load_workflow):
    """The workflow and an operator, loaded once and kept across commits."""
    load_workflow(NOOP)
    email = make_user("operator")
    workflow = db.session.scalar(sa.select(Workflow).where(Workflow.key == "held"))
    user = db.session.scalar(sa.select(User).where(User.email == email))
    return workflow, user


def _change(table, **values):
    """Change a row from another connection, as an admin's request would."""
    with db.engine.begin() as connection:
        connection.execute(sa.update(table).values(**values))


def _selects(statements):
    return [s for s in statements if s.lstrip().upper().startswith("SELECT")]


def test_a_start_after_a_commit_reads_the_workflow_and_the_user_in_one_statement(app, make_user, load_workflow):
    with app.app_context():
        workflow, user = _held(make_user, load_workflow)
        first = start_run(db.session, workflow, user, {}, trigger="api")
        first_id = first.id
        db.session.commit()
        statements = []

        def count(conn, cursor, statement, *args):
            statements.append(statement)

        sa.event.listen(db.engine, "before_cursor_execute", count)
        try:
            second = start_run(db.session, workflow, user, {}, trigger="api")
            second_id = second.id
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", count)
        db.session.commit()
        selects = _selects(statements)
        assert len(selects) == 1, statements
        assert "workflows" in selects[0] and "users" in selects[0]
        runs = {run.id: run for run in db.session.scalars(sa.select(Run).where(Run.id.in_([first_id, second_id])))}
        columns = [c.key for c in Run.__table__.columns if c.key not in ("id", "queued_at")]
        assert {c: getattr(runs[second_id], c) for c in columns} == {c: getattr(runs[first_id], c) for c in columns}
        assert runs[second_id].trigger_detail == "api by operator@test.example"
        assert runs[second_id].workflow_key == "held" and runs[second_id].status == "pending"


@pytest.mark.parametrize("table, values, error, message", [
    ("workflows", {"enabled": False}, Conflict, "This workflow is disabled; enable it before running it."),
    ("workflows", {"state": "draft", "published_version_id": None}, Conflict,
     "This workflow is a draft; publish it before running it."),
    ("workflows", {"archived_at": sa.func.now()}, Conflict, "This workflow is archived; it no longer runs."),
    ("workflows", {"allowed_roles": ["manager"]}, PermissionDenied, "Your role is not allowed to run this workflow."),
    ("users", {"role": "viewer"}, PermissionDenied, "Your role cannot run workflows."),
])
def test_a_start_after_a_commit_sees_what_changed_since(app, make_user, load_workflow, table, values, error, message):
    with app.app_context():
        workflow, user = _held(make_user, load_workflow)
        start_run(db.session, workflow, user, {}, trigger="api")
        db.session.commit()
        _change({"workflows": Workflow, "users": User}[table].__table__, **values)
        with pytest.raises(error) as raised:
            start_run(db.session, workflow, user, {}, trigger="api")
        assert str(raised.value) == message
        db.session.rollback()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Run)) == 1


def test_a_start_after_a_commit_runs_the_version_published_since_with_the_settings_of_now(
        app, make_user, load_workflow):
    with app.app_context():
        workflow, user = _held(make_user, load_workflow)
        first = start_run(db.session, workflow, user, {}, trigger="api")
        first_version = first.version_id
        db.session.commit()
        with app.app_context():  # an admin publishes a new version and renames the workflow, in a session of its own
            result = load_definition(db.session, {**NOOP, "name": "Held, renamed",
                                                   "steps": [{"key": "a", "type": "noop"}, {"key": "b", "type": "noop"}]})
            new_version = result.workflow.published_version_id
            db.session.commit()
        _change(Workflow.__table__, queue="slow", max_actions=7)
        run = start_run(db.session, workflow, user, {}, trigger="api")
        assert (run.version_id, run.workflow_name, run.queue, run.max_actions, run.progress_total) == (
            new_version, "Held, renamed", "slow", 7, 2)
        assert new_version != first_version
        db.session.commit()


def test_a_start_with_loaded_objects_reads_nothing_more(app, make_user, load_workflow):
    """A request's objects were loaded by it: the start checks them as they are, with no read of its own."""
    with app.app_context():
        workflow, user = _held(make_user, load_workflow)
        statements = []

        def count(conn, cursor, statement, *args):
            statements.append(statement)

        sa.event.listen(db.engine, "before_cursor_execute", count)
        try:
            start_run(db.session, workflow, user, {}, trigger="api")
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", count)
        db.session.commit()
        assert [s for s in _selects(statements) if "workflows" in s or "users" in s] == [], statements
