"""Replay (X4-X6): a finished run runs again as a new run, with its inputs or edited ones, on the current published
version, now or at a set time; both runs link to each other and can be compared side by side."""
import re
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from app.engine.params import ParamErrors
from app.extensions import db, queues
from app.models import AuditEvent, LogEntry, Run, User, Workflow
from app.services.errors import Conflict, Invalid, PermissionDenied
from app.services.runs import parse_at, replay_run, start_run
from app.timeutil import utcnow
from tests.conftest import csrf_token
from tests.factories import get_run, issue_api_token, make_run, steps_workflow


def greet(version: str = "v1") -> dict:
    """A workflow that greets `name` `count` times and fails when the name is "fail"; `version` shows in its
    first step's output, so a run says which definition it executed."""
    return steps_workflow("greet", [
        {"key": "hello", "type": "log", "name": "Say hello",
         "with": {"message": version + " hello {{ params.name }} x{{ params.count }}"}},
        {"key": "check", "type": "condition", "name": "Asked to fail?",
         "with": {"expression": "params.name == 'fail'"}, "then": "boom", "else": "done"},
        {"key": "boom", "type": "fail", "name": "Fail", "with": {"code": "ASKED_TO_FAIL", "message": "asked to fail"}},
        {"key": "done", "type": "log", "name": "Done", "with": {"message": "done"}},
    ], params=[
        {"name": "name", "type": "string", "required": True},
        {"name": "count", "type": "integer", "min": 0, "max": 10, "default": 1},
    ])


def _user(email: str) -> User:
    return db.session.scalar(sa.select(User).where(User.email == email))


def finished_run(app, drain, email: str, params: dict, record: dict | None = None) -> int:
    """Start a greet run through the service, work it to its end, and return its id."""
    with app.app_context():
        workflow = db.session.scalar(sa.select(Workflow).where(Workflow.key == "greet"))
        run = start_run(db.session, workflow, _user(email), params, record=record)
        db.session.commit()
        run_id = run.id
    drain()
    return run_id


def replay(app, run_id: int, email: str, **edits) -> int:
    """Replay run `run_id` as the user with `email` through the service and commit; returns the new run's id."""
    with app.app_context():
        new = replay_run(db.session, db.session.get(Run, run_id), _user(email), **edits)
        db.session.commit()
        return new.id


def api(client, app, email: str, run_id: int, body=None):
    token = issue_api_token(app, email)
    return client.post(f"/api/v1/runs/{run_id}/replay", json=body, headers={"Authorization": f"Bearer {token}"})


def sign_in(client, email: str) -> None:
    from tests.conftest import PASSWORD

    response = client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf_token(client)})
    assert response.status_code == 302


@pytest.fixture
def manager(make_user):
    return make_user("manager")


def test_replay_uses_current_published_version_and_reuses_params_and_record(app, load_workflow, manager, drain):
    load_workflow(greet("v1"))
    source_id = finished_run(app, drain, manager, {"name": "Ada", "count": 2}, record={"key": "INV-7", "n": 1})
    with app.app_context():
        db.session.execute(sa.update(Run).where(Run.id == source_id).values(selected_keys=["INV-7"]))
        db.session.commit()
    load_workflow(greet("v2"))  # published between the source and its replay

    replay_id = replay(app, source_id, manager)
    new = get_run(app, replay_id)
    assert new.status == "pending" and new.replay_of_id == source_id and new.not_before is None
    assert new.params == {"name": "Ada", "count": 2}
    assert new.context == {"key": "INV-7", "n": 1} and new.record_key == "INV-7"
    assert new.selected_keys == ["INV-7"]
    with app.app_context():
        assert queues.queue("default").count == 1  # queued like any run
    drain()

    source, new = get_run(app, source_id), get_run(app, replay_id)
    assert new.status == "completed"
    assert new.version_id != source.version_id
    assert source.steps[0].output["message"] == "v1 hello Ada x2"
    assert new.steps[0].output["message"] == "v2 hello Ada x2"
    with app.app_context():
        event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.entity_type == "run",
                                                                AuditEvent.entity_id == replay_id))
        assert event.action == "replay_run" and event.actor == manager
        assert event.changes["replay_of_id"] == [None, source_id] and event.changes["version"] == ["v1", "v2"]
        lines = db.session.scalars(sa.select(LogEntry.message).where(LogEntry.run_id == replay_id)).all()
    assert lines[0] == f"Replay of run #{source_id} (v1) on v2, by {manager}"


def test_a_failed_run_replayed_with_an_edited_param_completes(app, client, load_workflow, manager, drain):
    load_workflow(greet())
    source_id = finished_run(app, drain, manager, {"name": "fail", "count": 3})
    assert get_run(app, source_id).status == "failed"

    response = api(client, app, manager, source_id, {"params": {"name": "Bo"}})
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body["replay_of"] == source_id and body["status"] == "pending" and body["scheduled_for"] is None
    assert body["html_url"].endswith(f"/runs/{body['id']}")
    drain()
    new = get_run(app, body["id"])
    assert new.status == "completed" and new.trigger == "api"
    assert new.params == {"name": "Bo", "count": 3}  # the edit laid over the source's values


def test_edited_values_are_checked_like_a_new_run_naming_each_field(app, client, load_workflow, manager):
    load_workflow(greet())
    source_id = make_run(app, "greet", "completed", params={"name": "Ada", "count": 1})
    before = _count_runs(app)

    response = api(client, app, manager, source_id, {
        "params": {"count": "many", "colour": "red"}, "record": {"no_key": 1}, "at": "tomorrow-ish"})
    assert response.status_code == 422
    fields = response.get_json()["fields"]
    assert fields["count"] == "must be a whole number"
    assert fields["colour"] == "is not a parameter of this workflow"
    assert "record.key" in fields and "at" in fields
    for bad_at in ("2020-01-01T00:00:00Z", "", 12, "9999-12-31T23:59"):
        response = api(client, app, manager, source_id, {"at": bad_at})
        assert response.status_code == 422 and set(response.get_json()["fields"]) == {"at"}, (bad_at, response.json)
    response = api(client, app, manager, source_id, {"record": '{"key": "INV-1"}'})  # JSON text is the form's way
    assert response.status_code == 422 and set(response.get_json()["fields"]) == {"record"}
    response = api(client, app, manager, source_id, {"params": {"name": None}})  # cleared: it is required
    assert response.status_code == 422 and response.get_json()["fields"] == {"name": "is required"}
    response = api(client, app, manager, source_id, {"when": "now"})
    assert response.status_code == 422
    assert response.get_json()["fields"] == {"when": "is not a field of a replay request"}
    assert _count_runs(app) == before


def test_the_replay_form_shows_errors_next_to_fields_and_keeps_what_was_typed(app, client, load_workflow, manager):
    load_workflow(greet())
    source_id = make_run(app, "greet", "failed", params={"name": "Ada", "count": 1}, context={"key": "INV-1"},
                         record_key="INV-1")
    sign_in(client, manager)
    page = client.get(f"/runs/{source_id}/replay").get_data(as_text=True)
    assert 'value="Ada"' in page and "INV-1" in page and "v1</span>, the published version" in page

    response = client.post(f"/runs/{source_id}/replay", data={
        "csrf_token": csrf_token(client, f"/runs/{source_id}/replay"), "name": "Zed", "count": "x",
        "replay-record": '{"key": ', "replay-when": "later", "replay-at": "2020-01-01T10:00"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert re.search(r'class="field-error" role="alert">Count must be a whole number', html)
    assert "Context record must be valid JSON" in html
    assert "Date and time must be in the future" in html
    assert 'value="Zed"' in html and 'value="x"' in html and 'value="2020-01-01T10:00"' in html
    assert '{&#34;key&#34;: </textarea>' in html
    assert 'value="later" checked' in html
    assert _count_runs(app) == 1

    response = client.post(f"/runs/{source_id}/replay", data={
        "csrf_token": csrf_token(client, f"/runs/{source_id}/replay"), "name": "Zed", "count": "4",
        "replay-record": '{"key": "INV-2"}', "replay-when": "now"})
    assert response.status_code == 303
    new_id = int(response.headers["Location"].rsplit("/", 1)[1])
    new = get_run(app, new_id)
    assert new.params == {"name": "Zed", "count": 4} and new.record_key == "INV-2" and new.replay_of_id == source_id


def test_an_active_source_is_refused_with_a_reason(app, client, load_workflow, manager):
    load_workflow(greet())
    running = make_run(app, "greet", "running", params={"name": "Ada"})
    cancelled = make_run(app, "greet", "cancelled", params={"name": "Ada"})

    response = api(client, app, manager, running, {})
    assert response.status_code == 409
    assert response.get_json()["error"] == f"Run #{running} is still running; replay it once it has finished."
    assert api(client, app, manager, cancelled).status_code == 409
    sign_in(client, manager)
    assert client.get(f"/runs/{running}/replay").status_code == 409
    page = client.get(f"/runs/{running}").get_data(as_text=True)
    assert f'href="/runs/{running}/replay"' not in page
    assert f'title="Run #{running} is still running; replay it once it has finished."' in page
    assert _count_runs(app) == 2


def test_a_role_without_replay_run_is_refused_and_sees_no_replay_button(app, client, load_workflow, make_user):
    load_workflow(greet())
    source_id = make_run(app, "greet", "failed", params={"name": "Ada"})
    operator = make_user("operator")  # may run and cancel, not replay

    assert api(client, app, operator, source_id, {}).status_code == 403
    with app.app_context(), pytest.raises(PermissionDenied):
        replay_run(db.session, db.session.get(Run, source_id), _user(operator))
    sign_in(client, operator)
    assert client.get(f"/runs/{source_id}/replay").status_code == 403
    page = client.get(f"/runs/{source_id}").get_data(as_text=True)
    assert f'/runs/{source_id}/replay' not in page
    assert 'title="Your role cannot replay runs."' in page
    assert 'id="replay-run" disabled' in page
    assert "Run again with these values" in page  # running it again with its values is still theirs


def test_a_disabled_or_draft_workflow_cannot_be_replayed(app, client, load_workflow, make_user):
    load_workflow(greet())
    source_id = make_run(app, "greet", "completed", params={"name": "Ada"})
    admin = make_user("admin")
    with app.app_context():
        db.session.execute(sa.update(Workflow).values(enabled=False))
        db.session.commit()
    response = api(client, app, admin, source_id)
    assert response.status_code == 409 and "disabled" in response.get_json()["error"]
    assert api(client, app, make_user("manager"), source_id).status_code == 404  # hidden from non-admins
    sign_in(client, admin)
    page = client.get(f"/runs/{source_id}").get_data(as_text=True)
    assert 'title="This workflow is disabled; enable it before replaying its runs."' in page
    with app.app_context():
        db.session.execute(sa.update(Workflow).values(enabled=True, state="draft"))
        db.session.commit()
        with pytest.raises(Conflict, match="draft"):
            replay_run(db.session, db.session.get(Run, source_id), _user(admin))


def test_a_scheduled_replay_stays_pending_until_its_time_and_is_not_enqueued_early(app, client, load_workflow,
                                                                                   manager, drain):
    from app.services.reconcile import reconcile

    load_workflow(greet())
    source_id = make_run(app, "greet", "completed", params={"name": "Ada", "count": 1})
    at = utcnow() + timedelta(seconds=4)
    response = api(client, app, manager, source_id, {"at": at.replace(tzinfo=timezone.utc).isoformat()})
    assert response.status_code == 202
    assert response.get_json()["scheduled_for"] == at.isoformat() + "Z"
    new_id = response.get_json()["id"]
    with app.app_context():
        assert queues.queue("default").count == 0 and queues.scheduler().count() == 1
        # Long after it was created, its job still in rq-scheduler: the reconciler leaves it alone.
        db.session.execute(sa.update(Run).where(Run.id == new_id).values(queued_at=utcnow() - timedelta(minutes=5)))
        db.session.commit()
        report = reconcile(db.session)
        db.session.commit()
        assert (report.requeued, report.rescheduled) == (0, 0)
        # Redis lost the job: it goes back to rq-scheduler for its time, not onto the queue.
        queues.connection.flushdb()
        report = reconcile(db.session)
        db.session.commit()
        assert (report.requeued, report.rescheduled) == (0, 1)
        assert queues.queue("default").count == 0 and queues.scheduler().count() == 1
    run = get_run(app, new_id)
    assert run.status == "pending" and run.is_scheduled
    sign_in(client, manager)
    page = client.get(f"/runs/{new_id}").get_data(as_text=True)
    assert f"Scheduled for {run.not_before:%Y-%m-%d %H:%M:%S} UTC" in page
    # The lists say so too, beside its Pending status.
    assert f"scheduled for {run.not_before:%Y-%m-%d %H:%M:%S}" in client.get("/runs").get_data(as_text=True)

    drain()

    run = get_run(app, new_id)
    assert run.status == "completed"
    assert run.started_at >= run.not_before


def test_a_scheduled_replay_can_be_cancelled_before_it_starts(app, client, load_workflow, manager, drain):
    load_workflow(greet())
    source_id = make_run(app, "greet", "failed", params={"name": "Ada"})
    new_id = replay(app, source_id, manager, at=utcnow() + timedelta(seconds=2))
    sign_in(client, manager)
    response = client.post(f"/runs/{new_id}/cancel", data={"csrf_token": csrf_token(client, f"/runs/{new_id}")})
    assert response.status_code == 302
    assert get_run(app, new_id).status == "cancelled"
    with app.app_context():  # its job is taken away from rq-scheduler, not left to fire for nothing
        assert queues.scheduler().count() == 0

    drain()

    run = get_run(app, new_id)
    assert run.status == "cancelled" and run.steps == [] and run.started_at is None


def test_replays_link_both_ways_and_the_compare_page_highlights_changed_params(app, client, load_workflow, manager,
                                                                               drain):
    load_workflow(greet("v1"))
    source_id = finished_run(app, drain, manager, {"name": "fail", "count": 2})
    load_workflow(greet("v2"))
    first = replay(app, source_id, manager, params={"name": "Bo"})
    second = replay(app, source_id, manager)
    drain()
    sign_in(client, manager)

    source_page = client.get(f"/runs/{source_id}").get_data(as_text=True)
    assert re.search(rf'Replayed as\s+<a href="/runs/{first}">#{first}</a>', source_page)
    assert f'<a href="/runs/{second}">#{second}</a>' in source_page
    replay_page = client.get(f"/runs/{first}").get_data(as_text=True)
    assert f'Replay of <a href="/runs/{source_id}">#{source_id}</a>' in replay_page
    assert f'href="/runs/{source_id}/compare/{first}">Compare with run #{source_id}</a>' in replay_page

    response = client.get(f"/runs/{first}/compare/{source_id}")  # either order: the source is put on the left
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f"<th scope=\"col\">Source #{source_id}</th><th scope=\"col\">Replay #{first}</th>" in html
    name_row = re.search(r'<tr class="changed" data-param="name">.*?</tr>', html, re.S).group(0)
    assert '<mark>&#34;fail&#34;</mark>' in name_row and '<mark>&#34;Bo&#34;</mark>' in name_row
    assert '<tr class="" data-param="count">' in html
    assert re.search(r'<tr class="changed" id="compare-version">.*?v1</td><td>v2</td>', html, re.S)
    assert '<span class="diff-remove">-' in html and "v1 hello" in html and "v2 hello" in html
    assert re.search(r'id="compare-error">.*?ASKED_TO_FAIL.*?<td>—</td>', html, re.S)
    steps = re.search(r'<tr class="changed" data-step="boom">.*?</tr>', html, re.S).group(0)
    assert "Failed" in steps and "Did not run" in steps
    assert client.get(f"/runs/{source_id}/compare/999999").status_code == 404


def test_run_again_with_these_values_opens_the_run_form_prefilled(app, client, load_workflow, make_user):
    load_workflow(greet())
    source_id = make_run(app, "greet", "failed", params={"name": "Ada Lovelace", "count": 7})
    sign_in(client, make_user("operator"))
    page = client.get(f"/runs/{source_id}").get_data(as_text=True)
    assert f'href="/workflows/greet?from_run={source_id}#run">Run again with these values</a>' in page
    form = client.get(f"/workflows/greet?from_run={source_id}").get_data(as_text=True)
    assert 'name="name" type="text" value="Ada Lovelace"' in form and 'name="count" type="number" value="7"' in form
    plain = client.get("/workflows/greet?from_run=999999").get_data(as_text=True)
    assert 'name="count" type="number" value="1"' in plain  # no such run: the form's defaults
    assert client.get("/workflows/greet?from_run=abc").status_code == 400


def test_at_is_read_as_utc_unless_it_has_an_offset():
    now = datetime(2026, 11, 22, 6, 0)
    assert parse_at(None, now) is None
    assert parse_at("2026-11-22T07:00", now) == datetime(2026, 11, 22, 7, 0)
    assert parse_at("2026-11-22T09:00+02:00", now) == datetime(2026, 11, 22, 7, 0)
    assert parse_at("2026-11-22T07:00:00Z", now) == datetime(2026, 11, 22, 7, 0)
    for bad, message in (("2026-11-22T05:59", "must be in the future"), ("soon", "must be a date and time"),
                         ("2028-01-01T00:00", "within a year"), ("0001-01-01T00:00+14:00", "must be a date and time")):
        with pytest.raises(ParamErrors) as caught:
            parse_at(bad, now)
        assert message in caught.value.errors["at"], bad


def test_an_invalid_replay_writes_nothing(app, load_workflow, manager):
    load_workflow(greet())
    source_id = make_run(app, "greet", "completed", params={"name": "Ada"})
    with app.app_context():
        with pytest.raises(Invalid) as caught:
            replay_run(db.session, db.session.get(Run, source_id), _user(manager), record=[1, 2])
        assert caught.value.fields == {"record": 'must be an object with a "key", like {"key": "INV-2291"}'}
        db.session.rollback()
    assert _count_runs(app) == 1


def _count_runs(app) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(Run))
