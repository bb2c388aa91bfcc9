"""Command-line tools: users, API tokens and loading workflow definitions."""
import json

import sqlalchemy as sa

from app.extensions import db
from app.models import ApiToken, User, Workflow, WorkflowVersion
from tests.factories import steps_workflow


def test_users_create_and_token(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "create", "--email", "Ops@Example.com", "--password", "long-enough",
                                 "--role", "operator"])
    assert result.exit_code == 0, result.output
    token = runner.invoke(args=["users", "token", "ops@example.com"]).output.strip()
    assert token.startswith("fd_")
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.email == "ops@example.com"))
        assert user.role == "operator" and user.check_password("long-enough")
        assert db.session.scalar(sa.select(ApiToken.token_hash)) == ApiToken.hash(token)


def test_users_create_rejects_bad_input_clearly(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "create", "--email", "x@y.z", "--password", "short", "--role", "viewer"])
    assert result.exit_code != 0 and "password: must be at least 8 characters" in result.output
    result = runner.invoke(args=["users", "create", "--email", "x@y.z", "--password", "long-enough",
                                 "--role", "emperor"])
    assert result.exit_code != 0 and "emperor" in result.output


def test_workflows_load_creates_versions_and_is_idempotent(app, tmp_path):
    runner = app.test_cli_runner()
    path = tmp_path / "wf.json"
    document = steps_workflow("nightly", [{"key": "a", "type": "log", "with": {"message": "one"}}])
    path.write_text(json.dumps(document))
    assert "nightly: created, published version 1" in runner.invoke(args=["workflows", "load", str(path)]).output
    assert "nightly: unchanged, published version 1" in runner.invoke(args=["workflows", "load", str(path)]).output
    document["steps"][0]["with"]["message"] = "two"
    path.write_text(json.dumps(document))
    assert "nightly: updated, published version 2" in runner.invoke(args=["workflows", "load", str(path)]).output
    with app.app_context():
        workflow = db.session.scalar(sa.select(Workflow).where(Workflow.key == "nightly"))
        assert workflow.state == "published"
        assert workflow.published_version.number == 2
        assert workflow.published_version.definition["steps"][0]["with"]["message"] == "two"
        assert db.session.scalar(sa.select(sa.func.count()).select_from(WorkflowVersion)) == 2


def test_workflows_load_reports_every_bad_field_and_saves_nothing(app, tmp_path):
    runner = app.test_cli_runner()
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"key": "bad", "name": "Bad", "steps": [
        {"key": "a", "type": "teleport"}, {"key": "b", "type": "log", "next": "zzz", "with": {"message": "x"}}]}))
    result = runner.invoke(args=["workflows", "load", str(path)])
    assert result.exit_code != 0
    assert "steps[0].type: unknown step type 'teleport'" in result.output
    assert "steps[1].next: points to unknown step 'zzz'" in result.output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Workflow)) == 0


def test_workflows_load_rejects_broken_json(app, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{nope")
    result = app.test_cli_runner().invoke(args=["workflows", "load", str(path)])
    assert result.exit_code != 0 and "not valid JSON" in result.output


def test_demo_seed_is_idempotent(app):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["demo", "seed"]).output
    second = runner.invoke(args=["demo", "seed"]).output
    assert "workflow invoice-sync version 3 published" in first  # after its two earlier versions
    assert "workflow payment-reminders version 1 published" in first
    assert "draft vendor-onboarding version 1 saved" in first
    assert second.strip() == ""


def test_workflows_load_draft_saves_without_publishing(app, tmp_path, client, make_user):
    runner = app.test_cli_runner()
    path = tmp_path / "wf.json"
    document = steps_workflow("drafted", [{"key": "a", "type": "log", "with": {"message": "one"}}])
    path.write_text(json.dumps(document))
    result = runner.invoke(args=["workflows", "load", "--draft", str(path)])
    assert result.exit_code == 0 and "drafted: created, draft version 1" in result.output
    with app.app_context():
        workflow = db.session.scalar(sa.select(Workflow).where(Workflow.key == "drafted"))
        assert workflow.state == "draft" and workflow.published_version_id is None
    # Only admins see it: an operator gets 404 on its page, as for a workflow that does not exist.
    from tests.conftest import PASSWORD, csrf_token
    email = make_user("operator")
    client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf_token(client)})
    assert client.get("/workflows/drafted").status_code == 404
    # Published without --draft; a later --draft load saves a version but leaves v2 live.
    assert "drafted: updated, published version 1" in runner.invoke(args=["workflows", "load", str(path)]).output
    document["steps"][0]["with"]["message"] = "two"
    path.write_text(json.dumps(document))
    result = runner.invoke(args=["workflows", "load", "--draft", str(path)])
    assert "drafted: updated, draft version 2 (live: v1)" in result.output
    with app.app_context():
        workflow = db.session.scalar(sa.select(Workflow).where(Workflow.key == "drafted"))
        assert workflow.published_version.number == 1 and workflow.latest_version.number == 2
