"""Runs end to end through real RQ workers on a real Redis and a real database."""
import threading
import time

import sqlalchemy as sa

from app.extensions import db, queues
from app.models import LogEntry, Run, StepRun
from tests.factories import get_run, start, steps_workflow, wait_for, work_once


def test_a_run_walks_its_steps_and_completes_with_outputs(app, load_workflow, make_user, drain):
    load_workflow(steps_workflow("sync", [
        {"key": "fetch", "type": "http_request", "name": "Fetch invoices",
         "with": {"url": "{{ vars.sandbox_url }}/invoices?since={{ params.since }}"}},
        {"key": "any", "type": "condition", "name": "Any?",
         "with": {"expression": "steps.fetch.output.json | length > 0"}, "then": "yes", "else": "no"},
        {"key": "yes", "type": "log", "name": "Yes", "next": "end",
         "with": {"message": "Got {{ steps.fetch.output.json | length }} invoices"}},
        {"key": "no", "type": "log", "name": "No", "with": {"message": "none"}},
    ], params=[{"name": "since", "type": "date", "required": True}]))
    run_id = start(app, "sync", make_user("operator"), {"since": "2026-01-01"})
    assert get_run(app, run_id).status == "pending"

    drain()

    run = get_run(app, run_id)
    assert run.status == "completed"
    assert run.started_at and run.finished_at and run.finished_at >= run.started_at
    assert [s.step_key for s in run.steps] == ["fetch", "any", "yes"]
    fetch, condition, report = run.steps
    assert fetch.status == "completed" and fetch.output["status"] == 200
    assert fetch.input["url"].endswith("/sandbox/invoices?since=2026-01-01")
    assert isinstance(fetch.output["json"], list) and fetch.output["json"]
    assert condition.output["result"] is True and condition.branch == "then → yes"
    assert report.output["message"] == f"Got {len(fetch.output['json'])} invoices"
    assert run.percent == 100
    with app.app_context():
        messages = db.session.scalars(sa.select(LogEntry.message).where(LogEntry.run_id == run_id)).all()
    assert any("Got " in m for m in messages)
    assert messages[-1].startswith("Run completed")


def test_a_run_enqueued_twice_executes_once(app, load_workflow, make_user, drain):
    load_workflow(steps_workflow("once", [{"key": "a", "type": "log", "with": {"message": "hello"}}]))
    run_id = start(app, "once", make_user("operator"))
    with app.app_context():
        queues.enqueue("default", "jobs.runs.execute_run", run_id)

    drain()

    run = get_run(app, run_id)
    assert run.status == "completed"
    assert len(run.steps) == 1
    with app.app_context():
        hellos = db.session.scalar(
            sa.select(sa.func.count()).where(LogEntry.run_id == run_id, LogEntry.message == "hello")
        )
    assert hellos == 1


def test_a_failing_step_fails_the_run_with_its_code_and_message(app, load_workflow, make_user, drain):
    load_workflow(steps_workflow("fails", [
        {"key": "first", "type": "log", "with": {"message": "before"}},
        {"key": "boom", "type": "fail", "name": "Boom", "with": {"code": "BAD_DATA", "message": "Row 3 has no email"}},
        {"key": "never", "type": "log", "with": {"message": "after"}},
    ]))
    run_id = start(app, "fails", make_user("operator"))
    drain()
    run = get_run(app, run_id)
    assert run.status == "failed"
    assert run.error_code == "BAD_DATA"
    assert "Row 3 has no email" in run.error_message
    assert [(s.step_key, s.status) for s in run.steps] == [("first", "completed"), ("boom", "failed")]
    assert run.steps[1].error_message == "Row 3 has no email"


def test_an_http_error_fails_the_step_with_the_status_and_a_suggested_fix(app, load_workflow, make_user, drain):
    load_workflow(steps_workflow("mail", [
        {"key": "send", "type": "http_request", "name": "Send",
         "with": {"method": "POST", "url": "{{ vars.sandbox_url }}/mailer/send", "json": {"template": "nope"}}},
    ]))
    run_id = start(app, "mail", make_user("operator"))
    drain()
    step = get_run(app, run_id).steps[0]
    assert step.status == "failed"
    assert step.error_code == "HTTP_422"
    assert "template 'nope' does not exist" in step.error_message
    assert step.suggested_fix


def test_a_bad_placeholder_fails_the_step_naming_it(app, load_workflow, make_user, drain):
    load_workflow(steps_workflow("typo", [
        {"key": "a", "type": "log", "with": {"message": "{{ steps.fecth.output }}"}},
    ]))
    run_id = start(app, "typo", make_user("operator"))
    drain()
    step = get_run(app, run_id).steps[0]
    assert step.error_code == "TEMPLATE_ERROR"
    assert "fecth" in step.error_message


def test_cancelling_a_parked_run_takes_its_resume_away_from_rq_scheduler(app, load_workflow, make_user, drain):
    from app.services.runs import cancel_run
    from app.models import User

    load_workflow(steps_workflow("waits", [
        {"key": "pause", "type": "wait", "name": "Pause", "with": {"seconds": 1}},
        {"key": "after", "type": "log", "with": {"message": "after"}},
    ]))
    email = make_user("operator")
    run_id = start(app, "waits", email)
    work_once(app)
    with app.app_context():
        assert queues.scheduler().count() == 1
        user = db.session.scalar(sa.select(User).where(User.email == email))
        cancel_run(db.session, db.session.get(Run, run_id), user)
        db.session.commit()
        assert queues.scheduler().count() == 0
    drain()
    run = get_run(app, run_id)
    assert run.status == "cancelled" and [s.status for s in run.steps] == ["cancelled"]


def test_a_wait_step_parks_without_a_worker_and_rq_scheduler_resumes_it(app, load_workflow, make_user, drain):
    load_workflow(steps_workflow("waits", [
        {"key": "before", "type": "log", "with": {"message": "before"}},
        {"key": "pause", "type": "wait", "name": "Pause", "with": {"seconds": 1}},
        {"key": "after", "type": "log", "with": {"message": "after"}},
    ]))
    run_id = start(app, "waits", make_user("operator"))
    work_once(app)
    with app.app_context():
        assert queues.scheduler().count() == 1  # the resume is with rq-scheduler, not holding a worker
    parked = get_run(app, run_id)
    assert parked.status == "waiting"
    assert parked.steps[-1].status == "waiting" and parked.steps[-1].resume_at is not None

    drain()

    run = get_run(app, run_id)
    assert run.status == "completed"
    pause = run.steps[1]
    assert pause.status == "completed"
    assert pause.resumed_at >= pause.resume_at
    assert (pause.resume_at - pause.started_at).total_seconds() >= 0.99
    assert [s.step_key for s in run.steps] == ["before", "pause", "after"]
    with app.app_context():
        befores = db.session.scalar(sa.select(sa.func.count()).where(
            LogEntry.run_id == run_id, LogEntry.message == "before"))
    assert befores == 1  # completed steps are not re-run on resume


def test_cancelling_a_pending_run_stops_it_before_it_starts(app, load_workflow, make_user, drain):
    from app.services.runs import cancel_run
    from app.models import User

    load_workflow(steps_workflow("c1", [{"key": "a", "type": "log", "with": {"message": "x"}}]))
    email = make_user("operator")
    run_id = start(app, "c1", email)
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.email == email))
        assert cancel_run(db.session, db.session.get(Run, run_id), user).outcome == "cancelled"
        db.session.commit()
    drain()
    run = get_run(app, run_id)
    assert run.status == "cancelled" and run.steps == []


def test_cancelling_a_waiting_run_keeps_completed_steps_and_the_resume_does_nothing(
    app, load_workflow, make_user, drain
):
    from app.services.runs import cancel_run
    from app.models import User

    load_workflow(steps_workflow("c2", [
        {"key": "a", "type": "log", "with": {"message": "x"}},
        {"key": "w", "type": "wait", "with": {"seconds": 1}},
        {"key": "b", "type": "log", "with": {"message": "y"}},
    ]))
    email = make_user("operator")
    run_id = start(app, "c2", email)
    work_once(app)
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.email == email))
        assert cancel_run(db.session, db.session.get(Run, run_id), user).outcome == "cancelled"
        db.session.commit()
    drain()
    run = get_run(app, run_id)
    assert run.status == "cancelled"
    assert [(s.step_key, s.status) for s in run.steps] == [("a", "completed"), ("w", "cancelled")]


def test_cancelling_a_running_run_stops_it_between_steps(app, load_workflow, make_user, drain):
    from app.services.runs import cancel_run
    from app.models import User

    load_workflow(steps_workflow("c3", [
        {"key": "first", "type": "log", "with": {"message": "x"}},
        {"key": "slow", "type": "http_request", "with": {"url": "{{ vars.sandbox_url }}/slow?seconds=1.5"}},
        {"key": "last", "type": "log", "with": {"message": "never"}},
    ]))
    email = make_user("operator")
    run_id = start(app, "c3", email)
    outcome = {}

    def cancel_when_running():
        deadline = time.monotonic() + 20
        with app.app_context():
            user = db.session.scalar(sa.select(User).where(User.email == email))
            while time.monotonic() < deadline:
                db.session.expire_all()
                run = db.session.get(Run, run_id)
                if run.status == "running" and any(s.step_key == "slow" for s in run.steps):
                    outcome["result"] = cancel_run(db.session, run, user).outcome
                    db.session.commit()
                    return
                db.session.rollback()
                time.sleep(0.05)

    canceller = threading.Thread(target=cancel_when_running)
    canceller.start()
    drain()
    canceller.join()
    assert outcome["result"] == "requested"
    run = get_run(app, run_id)
    assert run.status == "cancelled"
    assert [(s.step_key, s.status) for s in run.steps] == [("first", "completed"), ("slow", "completed")]


def test_log_lines_are_written_in_batches_not_a_transaction_each(app, load_workflow, make_user):
    """Twenty log steps in a run cost a handful of commits, not twenty."""
    from app.services.execution.executor import process_run

    load_workflow(steps_workflow("chatty", [
        {"key": f"s{i}", "type": "log", "with": {"message": f"line {i}"}} for i in range(20)
    ]))
    run_id = start(app, "chatty", make_user("operator"))
    commits = []

    def count_commit(conn):
        commits.append(1)

    with app.app_context():
        app.config["CHECKPOINT_SECONDS"] = 60
        sa.event.listen(db.engine, "commit", count_commit)
        try:
            process_run(db.session, run_id)
        finally:
            sa.event.remove(db.engine, "commit", count_commit)
            app.config["CHECKPOINT_SECONDS"] = 0.05
        lines = db.session.scalar(sa.select(sa.func.count()).where(LogEntry.run_id == run_id))
    assert lines >= 20
    assert len(commits) <= 3, commits


def test_progress_and_heartbeat_are_kept_current_while_running(app, load_workflow, make_user, drain):
    load_workflow(steps_workflow("beat", [
        {"key": "a", "type": "log", "with": {"message": "a"}},
        {"key": "slow", "type": "http_request", "with": {"url": "{{ vars.sandbox_url }}/slow?seconds=1"}},
        {"key": "b", "type": "log", "with": {"message": "b"}},
    ]))
    run_id = start(app, "beat", make_user("operator"))
    seen = []

    def watch():
        deadline = time.monotonic() + 20
        with app.app_context():
            while time.monotonic() < deadline:
                db.session.expire_all()
                run = db.session.get(Run, run_id)
                if run.status == "running":
                    steps = db.session.scalars(sa.select(StepRun).where(StepRun.run_id == run_id)).all()
                    seen.append((run.progress_done, run.heartbeat_at, [s.status for s in steps]))
                if run.is_finished:
                    return
                db.session.rollback()
                time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    drain()
    watcher.join()
    assert any(done >= 1 and beat is not None and "running" in statuses for done, beat, statuses in seen), seen
    assert get_run(app, run_id).status == "completed"


def test_a_killed_work_horse_ends_the_run_as_error_and_keeps_completed_steps(
    app, load_workflow, make_user, flask_process
):
    """The forking worker (`flask worker --fork`) says so itself when its work horse is killed."""
    import os
    import signal
    import subprocess

    load_workflow(steps_workflow("killed", [
        {"key": "first", "type": "log", "with": {"message": "before"}},
        {"key": "slow", "type": "http_request", "name": "Slow call",
         "with": {"url": "{{ vars.sandbox_url }}/slow?seconds=8"}},
        {"key": "last", "type": "log", "with": {"message": "never"}},
    ]))
    run_id = start(app, "killed", make_user("operator"))

    def running_slow_step():
        run = get_run(app, run_id)
        return run.status == "running" and any(s.step_key == "slow" for s in run.steps)

    worker = flask_process("worker", "default", "--fork")
    wait_for(running_slow_step)
    horse = wait_for(lambda: subprocess.run(["pgrep", "-P", str(worker.pid)], capture_output=True,
                                             text=True).stdout.split())
    os.kill(int(horse[0]), signal.SIGKILL)

    run = wait_for(lambda: (r := get_run(app, run_id)).status == "error" and r)
    assert run.error_code == "WORKER_LOST"
    assert "killed" in run.error_message
    assert [(s.step_key, s.status) for s in run.steps] == [("first", "completed"), ("slow", "failed")]
    assert run.steps[1].error_code == "WORKER_LOST"


def test_a_run_that_outlives_its_job_timeout_ends_as_error(app, load_workflow, make_user, drain):
    load_workflow(steps_workflow("too-long", [
        {"key": "slow", "type": "http_request", "with": {"url": "{{ vars.sandbox_url }}/slow?seconds=4"}},
    ]))
    app.config["RUN_JOB_TIMEOUT"] = 1
    try:
        run_id = start(app, "too-long", make_user("operator"))
    finally:
        app.config["RUN_JOB_TIMEOUT"] = 3600
    drain()
    run = get_run(app, run_id)
    assert run.status == "error"
    assert run.error_code == "JOB_TIMEOUT"
    assert run.steps[0].status == "failed" and run.steps[0].error_code == "JOB_TIMEOUT"
