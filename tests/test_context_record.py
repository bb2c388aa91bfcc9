"""Runs carry what people search by: a context record, its key on every log line, and the workflow's name."""
import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import LogEntry, Run, Workflow
from tests.factories import get_run, issue_api_token, steps_workflow

RECORD_WORKFLOW = steps_workflow("ledger-post", [
    {"key": "fetch", "type": "http_request", "name": "Fetch",
     "with": {"url": "{{ vars.sandbox_url }}/echo/{{ record.key }}?amount={{ record.amount }}"}},
    {"key": "note", "type": "log", "name": "Note",
     "with": {"message": "Posting {{ record.key }} for {{ record.amount }}", "meta": {"invoice_id": "{{ record.key }}",
                                                                                    "amount": "{{ record.amount }}"}}},
    {"key": "other", "type": "log", "name": "Other",
     "with": {"message": "Touched the customer", "record_key": "CUST-{{ record.customer }}"}},
])


def _start(client, app, make_user, body):
    token = issue_api_token(app, make_user("operator"))
    return client.post("/api/v1/workflows/ledger-post/runs", json=body, headers={"Authorization": f"Bearer {token}"})


def test_a_run_started_with_a_record_shows_it_to_placeholders_and_its_log_lines_carry_its_key(
    app, client, make_user, load_workflow, drain,
):
    load_workflow(RECORD_WORKFLOW)
    response = _start(client, app, make_user, {"record": {"key": "INV-2291", "amount": 120.5, "customer": 7}})
    assert response.status_code == 202, response.get_json()
    run_id = response.get_json()["id"]
    drain()

    run = get_run(app, run_id)
    assert run.status == "completed"
    assert run.context == {"key": "INV-2291", "amount": 120.5, "customer": 7} and run.record_key == "INV-2291"
    fetch = run.steps[0]
    assert fetch.output["json"]["raw_uri"] == "/sandbox/echo/INV-2291?amount=120.5"
    with app.app_context():
        lines = db.session.execute(
            sa.select(LogEntry.message, LogEntry.record_key, LogEntry.meta).where(LogEntry.run_id == run_id)
            .order_by(LogEntry.id)
        ).all()
    assert lines[0].record_key == "INV-2291"  # the "started" line too
    note = next(line for line in lines if line.message == "Posting INV-2291 for 120.5")
    assert note.record_key == "INV-2291" and note.meta == {"invoice_id": "INV-2291", "amount": 120.5}
    other = next(line for line in lines if line.message == "Touched the customer")
    assert other.record_key == "CUST-7"
    assert {line.record_key for line in lines} == {"INV-2291", "CUST-7"}
    api_run = client.get(f"/api/v1/runs/{run_id}", headers={
        "Authorization": f"Bearer {issue_api_token(app, make_user('viewer'))}"}).get_json()
    assert api_run["record"]["key"] == "INV-2291" and api_run["workflow_name"] == "Ledger post"


@pytest.mark.parametrize("record, field", [
    ([1, 2], "record"), ("INV-1", "record"), ({"amount": 3}, "record.key"), ({"key": ""}, "record.key"),
    ({"key": "x" * 121}, "record.key"), ({"key": True}, "record.key"),
])
def test_a_bad_record_is_422_naming_it_and_nothing_is_stored(app, client, make_user, load_workflow, record, field):
    load_workflow(RECORD_WORKFLOW)
    response = _start(client, app, make_user, {"record": record})
    assert response.status_code == 422
    assert field in response.get_json()["fields"]
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Run)) == 0


def test_a_run_without_a_record_still_runs_and_its_lines_carry_no_key(app, client, make_user, load_workflow, drain):
    load_workflow(steps_workflow("plain", [{"key": "a", "type": "log", "with": {"message": "hi"}}]))
    token = issue_api_token(app, make_user("operator"))
    run_id = client.post("/api/v1/workflows/plain/runs", json={},
                         headers={"Authorization": f"Bearer {token}"}).get_json()["id"]
    drain()
    assert get_run(app, run_id).status == "completed"
    with app.app_context():
        keys = db.session.scalars(sa.select(LogEntry.record_key).where(LogEntry.run_id == run_id)).all()
    assert keys and set(keys) == {None}


def test_history_keeps_the_name_a_workflow_had_when_it_ran(app, client, make_user, load_workflow, login_as):
    load_workflow(RECORD_WORKFLOW)
    run_id = _start(client, app, make_user, {"record": {"key": "INV-1", "amount": 1, "customer": 2}}).get_json()["id"]
    with app.app_context():
        workflow = db.session.scalar(sa.select(Workflow).where(Workflow.key == "ledger-post"))
        workflow.name = "Ledger posting (renamed)"
        db.session.commit()
    run = get_run(app, run_id)
    assert run.workflow_key == "ledger-post" and run.workflow_name == "Ledger post"


def test_log_step_settings_are_checked_when_the_definition_is_loaded():
    from app.engine.definition import DefinitionError, parse_definition

    with pytest.raises(DefinitionError) as caught:
        parse_definition(steps_workflow("bad-log", [
            {"key": "a", "type": "log", "with": {"message": "m", "meta": ["not", "an", "object"], "record_key": [1]}},
        ]))
    fields = dict(caught.value.errors)
    assert "steps[0].with.meta" in fields and "steps[0].with.record_key" in fields
