"""The JSON API: bearer tokens, starting runs, reading them, listing workflows."""
import sqlalchemy as sa

from app.extensions import db
from app.models import ApiToken, Run
from tests.factories import issue_api_token, steps_workflow
from tests.test_polls import statements


def token_for(app, role: str, make_user) -> str:
    return issue_api_token(app, make_user(role))


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_a_script_starts_a_run_and_follows_it_to_completion(app, client, make_user, demo_workflows, drain):
    token = token_for(app, "operator", make_user)
    response = client.post("/api/v1/workflows/attendance-import/runs", headers=auth(token),
                           json={"params": {"site": "east", "day": "2026-11-20", "notify": True}})
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "pending" and body["url"].endswith(f"/api/v1/runs/{body['id']}")
    drain()
    run = client.get(f"/api/v1/runs/{body['id']}", headers=auth(token)).get_json()
    assert run["status"] == "completed"
    assert run["trigger"] == "api"
    assert run["params"] == {"site": "east", "day": "2026-11-20", "notify": True}
    assert run["progress"]["percent"] == 100
    assert run["started_at"] and run["finished_at"] and run["duration_seconds"] >= 0
    assert [s["key"] for s in run["steps"]][:2] == ["rows", "absent"]
    assert all(s["status"] == "completed" for s in run["steps"])


def test_invalid_params_are_422_naming_each_field(app, client, make_user, demo_workflows):
    token = token_for(app, "operator", make_user)
    response = client.post("/api/v1/workflows/invoice-sync/runs", headers=auth(token),
                           json={"params": {"since": "yesterday", "limit": "ten", "colour": "red"}})
    assert response.status_code == 422
    fields = response.get_json()["fields"]
    assert set(fields) == {"since", "limit", "colour"}
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Run)) == 0


def test_a_body_that_is_not_an_object_is_422(app, client, make_user, demo_workflows):
    token = token_for(app, "operator", make_user)
    response = client.post("/api/v1/workflows/invoice-sync/runs", headers=auth(token), json=[1, 2])
    assert response.status_code == 422
    assert response.get_json()["fields"] == {"body": "must be a JSON object"}


def test_unknown_workflow_is_404(app, client, make_user):
    token = token_for(app, "operator", make_user)
    response = client.post("/api/v1/workflows/nope/runs", headers=auth(token), json={"params": {}})
    assert response.status_code == 404 and "error" in response.get_json()


def test_a_viewer_token_cannot_run_403(app, client, make_user, demo_workflows):
    token = token_for(app, "viewer", make_user)
    response = client.post("/api/v1/workflows/sandbox-health/runs", headers=auth(token), json={})
    assert response.status_code == 403
    assert response.get_json()["error"] == "Your role cannot run workflows."


def test_no_token_or_a_bad_token_is_401(client, demo_workflows):
    for headers in ({}, {"Authorization": "Bearer fd_wrong"}, {"Authorization": "Basic abc"}):
        response = client.post("/api/v1/workflows/sandbox-health/runs", headers=headers, json={})
        assert response.status_code == 401
        assert response.is_json and response.get_json()["error"]


def test_tokens_are_stored_only_as_hashes(app, make_user):
    token = token_for(app, "operator", make_user)
    with app.app_context():
        row = db.session.scalar(sa.select(ApiToken))
        assert row.token_hash != token and token not in row.token_hash
        assert row.token_hash == ApiToken.hash(token)


def test_workflow_list_shows_what_the_user_may_see(app, client, make_user, demo_workflows, load_workflow):
    load_workflow(steps_workflow("managers-only", [{"key": "a", "type": "noop"}], allowed_roles=["manager"]))
    operator = client.get("/api/v1/workflows", headers=auth(token_for(app, "operator", make_user))).get_json()
    manager = client.get("/api/v1/workflows", headers=auth(token_for(app, "manager", make_user))).get_json()
    assert "managers-only" not in {w["key"] for w in operator["workflows"]}
    assert "managers-only" in {w["key"] for w in manager["workflows"]}
    assert "attendance-import" in {w["key"] for w in operator["workflows"]}


def test_a_run_of_a_hidden_workflow_is_404(app, client, make_user, load_workflow):
    from tests.factories import start

    load_workflow(steps_workflow("secret", [{"key": "a", "type": "noop"}], allowed_roles=["manager"]))
    run_id = start(app, "secret", make_user("manager"))
    token = token_for(app, "operator", make_user)
    assert client.get(f"/api/v1/runs/{run_id}", headers=auth(token)).status_code == 404


def test_the_api_needs_no_csrf_token(app, client, make_user, demo_workflows):
    token = token_for(app, "operator", make_user)
    response = client.post("/api/v1/workflows/sandbox-health/runs", headers=auth(token), json={})
    assert response.status_code == 202


def test_a_body_that_is_not_json_is_refused_clearly(app, client, make_user, demo_workflows):
    token = token_for(app, "operator", make_user)
    response = client.post("/api/v1/workflows/sandbox-health/runs", headers=auth(token), data="params=1")
    assert response.status_code == 415 and "application/json" in response.get_json()["error"]
    response = client.post("/api/v1/workflows/sandbox-health/runs", data="{oops",
                           headers={**auth(token), "Content-Type": "application/json"})
    assert response.status_code == 400 and "malformed" in response.get_json()["error"]


def test_starting_a_run_reads_nothing_back_after_its_commit(app, client, make_user, demo_workflows):
    """The 202 answer is made of what the start wrote: the run is not read again once committed."""
    token = token_for(app, "operator", make_user)
    with statements(app) as sent:
        response = client.post("/api/v1/workflows/attendance-import/runs", headers=auth(token),
                               json={"params": {"site": "east", "day": "2026-11-20"}})
    assert response.status_code == 202 and response.get_json()["status"] == "pending"
    inserted = next(i for i, s in enumerate(sent) if s.lstrip().upper().startswith("INSERT INTO RUNS"))
    assert not [s for s in sent[inserted + 1:] if "FROM runs" in s], sent[inserted + 1:]
