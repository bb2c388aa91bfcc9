"""Retrying a failed run: the plan says what is reused and what runs again, the new attempt resumes at the failed
step without executing a completed step again (counted on a real local HTTP server), and it runs the current
published version only when the steps it reuses still fit it."""
import threading
from collections import Counter
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditEvent, LogEntry, Run, StepRun
from app.security.outbound import OutboundPolicy
from tests.conftest import csrf_token
from tests.factories import get_run, issue_api_token, start, steps_workflow, work_once


class Remote:
    """A local HTTP server that counts the calls to each path; paths in `failing` answer 503."""

    def __init__(self):
        self.calls: Counter = Counter()
        self.failing: set[str] = set()
        remote = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                path = self.path.split("?")[0]
                remote.calls[path] += 1
                status = 503 if path in remote.failing else 200
                body = b'{"error": "try later"}' if status == 503 else b'{"ok": true, "path": "%s"}' % path.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def remote(app):
    server = Remote()
    before = app.extensions["flowdesk_outbound"]
    app.extensions["flowdesk_outbound"] = before.merged(OutboundPolicy.parse(server.url.split("//", 1)[1]))
    yield server
    app.extensions["flowdesk_outbound"] = before
    server.server.shutdown()
    server.server.server_close()


def chain(remote: Remote, key: str = "chain", **extra) -> dict:
    """fetch → check → post (503 while failing) → report, the report using the first step's output."""
    return steps_workflow(key, [
        {"key": "fetch", "type": "http_request", "name": "Fetch", "with": {"url": f"{remote.url}/fetch"}},
        {"key": "check", "type": "http_request", "name": "Check", "with": {"url": f"{remote.url}/check"}},
        {"key": "post", "type": "http_request", "name": "Post", "with": {"url": f"{remote.url}/post"}},
        {"key": "report", "type": "log", "name": "Report",
         "with": {"message": "fetched {{ steps.fetch.output.json.path }}, posted {{ steps.post.output.json.path }}"}},
    ], **extra)


@contextmanager
def signed_in(client, make_user, role="operator"):
    from tests.test_security import sign_in

    email = make_user(role)
    sign_in(client, email)
    yield email


def _retry(client, run_id: int):
    return client.post(f"/runs/{run_id}/retry", data={"csrf_token": csrf_token(client, f"/runs/{run_id}/retry")})


def _status_and_version(app, run_id: int) -> tuple[str, int]:
    from app.models import WorkflowVersion

    with app.app_context():
        row = db.session.execute(sa.select(Run.status, WorkflowVersion.number).join(Run.version)
                                 .where(Run.id == run_id)).one()
        return tuple(row)


def test_a_retried_run_never_executes_a_completed_step_again(app, client, make_user, load_workflow, remote):
    load_workflow(chain(remote))
    remote.failing.add("/post")
    email = make_user("operator")
    run_id = start(app, "chain", email)
    work_once(app)
    assert get_run(app, run_id).status == "failed"
    assert remote.calls == {"/fetch": 1, "/check": 1, "/post": 1}

    from tests.test_security import sign_in

    sign_in(client, email)
    plan = client.get(f"/runs/{run_id}/retry").get_data(as_text=True)
    assert "reused (completed in attempt 1)" in plan and "runs again" in plan
    assert _retry(client, run_id).status_code == 302
    work_once(app)
    # Nothing corrected: it fails again at the same step, attempt 2, the first steps not re-run.
    run = get_run(app, run_id)
    assert (run.status, run.attempt, run.error_code) == ("failed", 2, "HTTP_503")
    assert remote.calls == {"/fetch": 1, "/check": 1, "/post": 2}

    remote.failing.clear()
    assert _retry(client, run_id).status_code == 302
    work_once(app)
    run = get_run(app, run_id)
    assert (run.status, run.attempt) == ("completed", 3)
    assert remote.calls == {"/fetch": 1, "/check": 1, "/post": 3}
    # The reused step's output fed the placeholders of a step that ran in attempt 3.
    with app.app_context():
        messages = db.session.scalars(sa.select(LogEntry.message).where(LogEntry.run_id == run_id)).all()
        steps = db.session.execute(sa.select(StepRun.step_key, StepRun.attempt, StepRun.status)
                                   .where(StepRun.run_id == run_id).order_by(StepRun.id)).all()
    assert "fetched /fetch, posted /post" in messages
    assert [tuple(s) for s in steps] == [
        ("fetch", 1, "completed"), ("check", 1, "completed"), ("post", 1, "failed"),
        ("post", 2, "failed"),
        ("post", 3, "completed"), ("report", 3, "completed"),
    ]
    assert any("Attempt 3 of run" in m and "resuming at 'Post'" in m for m in messages)
    assert run.result["steps"]["fetch"]["json"]["path"] == "/fetch"


def test_the_run_page_shows_each_attempt_and_groups_steps_by_attempt(app, client, make_user, load_workflow, remote):
    load_workflow(chain(remote))
    remote.failing.add("/post")
    with signed_in(client, make_user) as email:
        run_id = start(app, "chain", email)
        work_once(app)
        page = client.get(f"/runs/{run_id}").get_data(as_text=True)
        assert 'id="retry-run"' in page and 'id="run-attempts"' not in page
        _retry(client, run_id)
        work_once(app)
        page = client.get(f"/runs/{run_id}").get_data(as_text=True)
        listed = client.get("/runs").get_data(as_text=True)
    assert "2 attempts" in listed
    assert 'id="run-attempts"' in page
    assert f"retry by {email}" in page
    assert 'id="attempt-1-steps"' in page and 'id="attempt-2-steps"' in page
    with app.app_context():
        audit = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "retry_run")).one()
    assert audit.entity_id == run_id and audit.changes["status"] == ["failed", "pending"]


def test_retry_runs_the_published_version_when_the_steps_it_reuses_fit_it(app, client, make_user, load_workflow,
                                                                          remote):
    load_workflow(chain(remote))
    remote.failing.add("/post")
    with signed_in(client, make_user) as email:
        run_id = start(app, "chain", email)
        work_once(app)
        # v2 changes the report step only: the attempt runs v2.
        v2 = chain(remote)
        v2["steps"][3]["with"]["message"] = "v2 report"
        load_workflow(v2)
        remote.failing.clear()
        plan = client.get(f"/runs/{run_id}/retry").get_data(as_text=True)
        assert "on v2" in plan and "retry-version-note" not in plan
        _retry(client, run_id)
        work_once(app)
    assert _status_and_version(app, run_id) == ("completed", 2)
    assert remote.calls["/fetch"] == 1


def test_retry_keeps_the_earlier_version_when_a_reused_step_is_gone_and_says_why(app, client, make_user,
                                                                                load_workflow, remote):
    load_workflow(chain(remote))
    remote.failing.add("/post")
    with signed_in(client, make_user) as email:
        run_id = start(app, "chain", email)
        work_once(app)
        v2 = chain(remote)
        del v2["steps"][1]  # 'check' is gone
        load_workflow(v2)
        remote.failing.clear()
        plan = client.get(f"/runs/{run_id}/retry").get_data(as_text=True)
        assert "Runs v1 again, not the published v2: step &#39;Check&#39; is not in v2." in plan
        _retry(client, run_id)
        work_once(app)
    assert _status_and_version(app, run_id) == ("completed", 1)
    assert remote.calls == {"/fetch": 1, "/check": 1, "/post": 2}


def test_a_worker_lost_run_retries_from_the_step_that_was_running(app, client, make_user, load_workflow, remote):
    """The reconciler ended the run as WORKER_LOST while 'check' was running: the retry resumes at 'check'."""
    from app.services.execution.lost import end_lost_run

    load_workflow(chain(remote))
    with signed_in(client, make_user) as email:
        run_id = start(app, "chain", email)
        work_once(app)
        with app.app_context():
            # Rewind what the worker wrote to the moment it died, in the middle of 'check'.
            db.session.execute(sa.delete(StepRun).where(StepRun.run_id == run_id,
                                                        StepRun.step_key.in_(["post", "report"])))
            db.session.execute(sa.update(StepRun).where(StepRun.run_id == run_id, StepRun.step_key == "check")
                               .values(status="running", finished_at=None))
            db.session.execute(sa.update(Run).where(Run.id == run_id).values(status="running", finished_at=None,
                                                                           cursor=None, result=None))
            assert end_lost_run(db.session, run_id, "WORKER_LOST", "The worker was lost.", noticed_by="reconciler")
            db.session.commit()
        assert get_run(app, run_id).status == "error"
        plan = client.get(f"/runs/{run_id}/retry").get_data(as_text=True)
        assert plan.count("reused (completed in attempt 1)") == 1
        _retry(client, run_id)
        work_once(app)
    run = get_run(app, run_id)
    assert (run.status, run.attempt) == ("completed", 2)
    assert remote.calls == {"/fetch": 1, "/check": 2, "/post": 2}


def test_only_failed_or_error_runs_can_be_retried(app, client, make_user, load_workflow, remote):
    from tests.factories import make_run

    load_workflow(chain(remote))
    with signed_in(client, make_user):
        for status in ("completed", "running", "cancelled"):
            run_id = make_run(app, "chain", status)
            assert client.get(f"/runs/{run_id}/retry").status_code == 409
            assert _retry(client, run_id).status_code in (400, 409)  # the plan page (for the token) answers 409 too


def test_a_viewer_sees_no_retry_and_may_not_retry(app, client, make_user, load_workflow, remote):
    load_workflow(chain(remote))
    remote.failing.add("/post")
    run_id = start(app, "chain", make_user("operator"))
    work_once(app)
    with signed_in(client, make_user, "viewer"):
        assert 'id="retry-run"' not in client.get(f"/runs/{run_id}").get_data(as_text=True)
        assert client.get(f"/runs/{run_id}/retry").status_code == 403


def test_the_api_retries_and_cancels(app, client, make_user, load_workflow, remote):
    load_workflow(chain(remote))
    remote.failing.add("/post")
    email = make_user("operator")
    auth = {"Authorization": f"Bearer {issue_api_token(app, email)}"}
    run_id = start(app, "chain", email)
    assert client.post(f"/api/v1/runs/{run_id}/retry", headers=auth).status_code == 409  # pending, not failed
    work_once(app)
    answer = client.post(f"/api/v1/runs/{run_id}/retry", headers=auth)
    assert answer.status_code == 202, answer.get_json()
    body = answer.get_json()
    assert body["attempt"] == 2 and body["plan"]["resume_at"] == "post"
    assert [s["action"] for s in body["plan"]["steps"]] == ["reused", "reused", "runs again", "runs"]
    assert client.get(f"/api/v1/runs/{run_id}", headers=auth).get_json()["attempt"] == 2
    cancelled = client.post(f"/api/v1/runs/{run_id}/cancel", headers=auth)
    assert cancelled.status_code == 202 and cancelled.get_json() == {"id": run_id, "outcome": "cancelled",
                                                                     "status": "cancelled"}
    again = client.post(f"/api/v1/runs/{run_id}/cancel", headers=auth)
    assert again.status_code == 409 and "already finished" in again.get_json()["error"]


# ---------------------------------------------------------------- Retry step (X3)


def test_retry_step_runs_the_failed_step_again_with_the_same_input_then_goes_on(app, client, make_user,
                                                                                 load_workflow, remote):
    load_workflow(chain(remote))
    remote.failing.add("/post")
    with signed_in(client, make_user) as email:
        run_id = start(app, "chain", email)
        work_once(app)
        page = client.get(f"/runs/{run_id}").get_data(as_text=True)
        assert 'id="retry-step-post"' in page and 'id="retry-step-fetch"' not in page
        with app.app_context():
            before = db.session.scalar(sa.select(StepRun.input).where(StepRun.run_id == run_id,
                                                                      StepRun.step_key == "post"))
        # Only the step the run failed at may be retried on its own.
        token = csrf_token(client, f"/runs/{run_id}")
        assert client.post(f"/runs/{run_id}/steps/fetch/retry", data={"csrf_token": token}).status_code == 409
        remote.failing.clear()
        assert client.post(f"/runs/{run_id}/steps/post/retry", data={"csrf_token": token}).status_code == 302
        work_once(app)
    run = get_run(app, run_id)
    assert (run.status, run.attempt) == ("completed", 1)
    assert remote.calls == {"/fetch": 1, "/check": 1, "/post": 2}
    with app.app_context():
        rows = db.session.execute(sa.select(StepRun.step_key, StepRun.status, StepRun.retries, StepRun.input)
                                  .where(StepRun.run_id == run_id).order_by(StepRun.id)).all()
    assert [(k, s, r) for k, s, r, _ in rows] == [("fetch", "completed", 0), ("check", "completed", 0),
                                                  ("post", "completed", 1), ("report", "completed", 0)]
    assert rows[2].input == before


def test_the_api_retries_a_step_and_refuses_one_the_run_did_not_fail_at(app, client, make_user, load_workflow,
                                                                       remote):
    load_workflow(chain(remote))
    remote.failing.add("/post")
    email = make_user("operator")
    auth = {"Authorization": f"Bearer {issue_api_token(app, email)}"}
    run_id = start(app, "chain", email)
    work_once(app)
    refused = client.post(f"/api/v1/runs/{run_id}/steps/check/retry", headers=auth)
    assert refused.status_code == 409 and "'Post'" in refused.get_json()["error"]
    remote.failing.clear()
    answer = client.post(f"/api/v1/runs/{run_id}/steps/post/retry", headers=auth)
    assert answer.status_code == 202 and answer.get_json()["retries"] == 1
    work_once(app)
    assert get_run(app, run_id).status == "completed"


# ---------------------------------------------------------------- automatic retries (X8)


def flaky(remote: Remote, **policy) -> dict:
    definition = chain(remote, key="flaky")
    definition["steps"][2]["retry"] = {"max_attempts": 3, "backoff_seconds": 1, "backoff": "exponential",
                                       "on": ["HTTP_5XX"], **policy}
    return definition


def _tries(app, run_id: int, key: str = "post") -> list:
    with app.app_context():
        return db.session.execute(sa.select(StepRun.status, StepRun.retries, StepRun.started_at,
                                            StepRun.error_code, StepRun.resume_at)
                                  .where(StepRun.run_id == run_id, StepRun.step_key == key)
                                  .order_by(StepRun.id)).all()


def test_automatic_retries_back_off_and_keep_every_try(app, make_user, load_workflow, remote, drain):
    load_workflow(flaky(remote))
    remote.failing.add("/post")
    run_id = start(app, "flaky", make_user("operator"))
    work_once(app)
    # The first try failed: the run waits, holding no worker, with the next try due in 1 s.
    assert get_run(app, run_id).status == "waiting"
    (first,) = _tries(app, run_id)
    assert (first.status, first.error_code) == ("waiting", "HTTP_503") and first.resume_at is not None
    drain()
    run = get_run(app, run_id)
    assert (run.status, run.error_code) == ("failed", "HTTP_503")
    assert remote.calls["/post"] == 3 and remote.calls["/fetch"] == 1
    tries = _tries(app, run_id)
    assert [(t.status, t.retries) for t in tries] == [("failed", 0), ("failed", 1), ("failed", 2)]
    # Exponential back-off: 1 s, then 2 s, between the tries.
    assert (tries[1].started_at - tries[0].started_at).total_seconds() >= 1.0
    assert (tries[2].started_at - tries[1].started_at).total_seconds() >= 2.0
    with app.app_context():
        messages = db.session.scalars(sa.select(LogEntry.message).where(LogEntry.run_id == run_id)).all()
    assert any("try 2 of 3 in 1 s" in m for m in messages)
    assert any("try 3 of 3 in 2 s" in m for m in messages)


def test_an_automatic_retry_that_succeeds_lets_the_run_complete(app, make_user, load_workflow, remote, drain):
    load_workflow(flaky(remote, backoff="fixed"))
    remote.failing.add("/post")
    run_id = start(app, "flaky", make_user("operator"))
    work_once(app)
    remote.failing.clear()
    drain()
    assert get_run(app, run_id).status == "completed"
    assert [(t.status, t.retries) for t in _tries(app, run_id)] == [("failed", 0), ("completed", 1)]
    assert remote.calls == {"/fetch": 1, "/check": 1, "/post": 2}


def test_an_error_the_policy_does_not_name_fails_at_once(app, make_user, load_workflow, remote):
    load_workflow(flaky(remote, on=["HTTP_TIMEOUT"]))
    remote.failing.add("/post")
    run_id = start(app, "flaky", make_user("operator"))
    work_once(app)
    assert get_run(app, run_id).status == "failed"
    assert remote.calls["/post"] == 1


@pytest.mark.parametrize("retry, field", [
    ({"max_attempts": 0}, "steps[0].retry.max_attempts"),
    ({"max_attempts": 3, "backoff": "linear"}, "steps[0].retry.backoff"),
    ({"max_attempts": 3, "on": ["http 500"]}, "steps[0].retry.on"),
    ({"max_attempts": 3, "backoff_seconds": -1}, "steps[0].retry.backoff_seconds"),
    ("three times", "steps[0].retry"),
])
def test_a_bad_retry_policy_is_refused_naming_the_field(retry, field):
    from app.engine.definition import DefinitionError, parse_definition

    with pytest.raises(DefinitionError) as caught:
        parse_definition(steps_workflow("bad", [{"key": "a", "type": "noop", "retry": retry}]))
    assert field in [f for f, _ in caught.value.errors]


def test_error_code_families_in_a_policy():
    from app.engine.retry import RetryPolicy

    policy = RetryPolicy(3, 1, on=("HTTP_5XX", "HTTP_TIMEOUT"))
    assert policy.covers("HTTP_503") and policy.covers("HTTP_TIMEOUT")
    assert not policy.covers("HTTP_404") and not policy.covers("HTTP_5000") and not policy.covers("HTTP_CONNECTION")
    assert RetryPolicy(2, 0).covers("ANYTHING")
