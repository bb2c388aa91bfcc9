"""No run is lost: the reconciler re-enqueues pending runs and re-schedules waits whose jobs Redis lost,
and ends running runs whose worker is gone (a lost host, the OOM killer) as WORKER_LOST."""
import os
import signal
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.extensions import db, queues
from app.models import LogEntry, Run, StepRun
from app.services.execution.executor import process_run
from app.services.execution.journal import heartbeats
from app.services.reconcile import end_lost_runs
from app.timeutil import utcnow
from tests.factories import child_pids, get_run, start, steps_workflow, wait_for, work_once

# Small limits so a lost worker is noticed in seconds: heartbeat every 0.5 s, lost after 3 s of silence.
FAST_LOSS = {"FLOWDESK_HEARTBEAT_SECONDS": "0.5", "FLOWDESK_STALE_RUN_SECONDS": "3"}


def _age(app, run_id: int, seconds: float) -> None:
    with app.app_context():
        run = db.session.get(Run, run_id)
        run.queued_at = run.queued_at - timedelta(seconds=seconds)
        db.session.commit()


def _reconcile(app):
    from app.services.reconcile import reconcile

    with app.app_context():
        report = reconcile(db.session)
        db.session.commit()
        return report


def test_a_pending_run_whose_job_vanished_is_enqueued_again_and_completes(app, load_workflow, make_user, drain):
    load_workflow(steps_workflow("lost", [{"key": "a", "type": "log", "with": {"message": "ran"}}]))
    run_id = start(app, "lost", make_user("operator"))
    with app.app_context():
        queues.connection.flushdb()  # Redis restarted without its data
    _age(app, run_id, 120)

    assert _reconcile(app).requeued == 1
    drain()
    assert get_run(app, run_id).status == "completed"


def test_a_pending_run_with_its_job_still_queued_is_left_alone(app, load_workflow, make_user):
    load_workflow(steps_workflow("queued", [{"key": "a", "type": "noop"}]))
    run_id = start(app, "queued", make_user("operator"))
    _age(app, run_id, 120)
    assert _reconcile(app).requeued == 0
    with app.app_context():
        assert queues.queue("default").count == 1


def test_a_just_started_run_is_given_time_to_be_enqueued(app, load_workflow, make_user):
    load_workflow(steps_workflow("fresh", [{"key": "a", "type": "noop"}]))
    start(app, "fresh", make_user("operator"))
    with app.app_context():
        queues.connection.flushdb()
    assert _reconcile(app).requeued == 0


def test_a_waiting_run_whose_resume_vanished_is_resumed(app, load_workflow, make_user, drain):
    load_workflow(steps_workflow("parked", [
        {"key": "w", "type": "wait", "with": {"seconds": 1}},
        {"key": "b", "type": "log", "with": {"message": "after"}},
    ]))
    run_id = start(app, "parked", make_user("operator"))
    work_once(app)
    assert get_run(app, run_id).status == "waiting"
    with app.app_context():
        queues.connection.flushdb()
    assert _reconcile(app).rescheduled == 1
    drain()
    run = get_run(app, run_id)
    assert run.status == "completed"
    assert [s.status for s in run.steps] == ["completed", "completed"]


def test_the_scheduler_reconciles_while_it_holds_its_lock(app, load_workflow, make_user):
    from jobs.scheduler import FlowdeskScheduler

    load_workflow(steps_workflow("tick", [{"key": "a", "type": "noop"}]))
    run_id = start(app, "tick", make_user("operator"))
    with app.app_context():
        queues.connection.flushdb()
    _age(app, run_id, 120)
    with app.app_context():
        scheduler = FlowdeskScheduler(connection=queues.connection, interval=1, app=app)
        scheduler.reconcile_every = 0
        scheduler.enqueue_jobs()
        assert queues.queue("default").count == 1
        assert db.session.scalar(sa.select(Run.status).where(Run.id == run_id)) == "pending"


def _running_step(app, run_id: int, step_key: str) -> bool:
    run = get_run(app, run_id)
    return run.status == "running" and any(s.step_key == step_key and s.status == "running" for s in run.steps)


@pytest.mark.parametrize("fork", [False, True], ids=["in-process worker", "forking worker"])
def test_a_run_whose_worker_is_killed_ends_as_worker_lost(app, load_workflow, make_user, flask_process, fork):
    load_workflow(steps_workflow("host-lost", [
        {"key": "first", "type": "log", "with": {"message": "before"}},
        {"key": "slow", "type": "http_request", "name": "Slow call",
         "with": {"url": "{{ vars.sandbox_url }}/slow?seconds=10"}},
        {"key": "last", "type": "log", "with": {"message": "never"}},
    ]))
    worker = flask_process("worker", "default", *(["--fork"] if fork else []), env=FAST_LOSS)
    flask_process("scheduler", "--interval", "0.5", env=FAST_LOSS)
    run_id = start(app, "host-lost", make_user("operator"))
    wait_for(lambda: _running_step(app, run_id, "slow"), what="the slow step running")
    horse = wait_for(lambda: child_pids(worker.pid), what="a work horse")[0] if fork else None

    # The host is lost: the worker (and its work horse) die at once, so nothing can say so but the heartbeat.
    os.kill(worker.pid, signal.SIGKILL)
    if horse is not None:
        os.kill(horse, signal.SIGKILL)

    run = wait_for(lambda: (r := get_run(app, run_id)).status != "running" and r, timeout=30, what="the run ending")
    assert run.status == "error"
    assert run.error_code == "WORKER_LOST"
    assert "heartbeat" in run.error_message
    assert [(s.step_key, s.status) for s in run.steps] == [("first", "completed"), ("slow", "failed")]
    assert run.steps[1].error_code == "WORKER_LOST"
    with app.app_context():
        messages = db.session.scalars(sa.select(LogEntry.message).where(LogEntry.run_id == run_id)).all()
    assert any(m.startswith("[WORKER_LOST]") for m in messages), messages


def test_a_step_longer_than_the_stale_limit_keeps_its_run_alive_and_completes(
    app, load_workflow, make_user, flask_process
):
    load_workflow(steps_workflow("long-step", [
        {"key": "slow", "type": "http_request", "with": {"url": "{{ vars.sandbox_url }}/slow?seconds=4"}},
        {"key": "after", "type": "log", "with": {"message": "done"}},
    ]))
    flask_process("worker", "default", env=FAST_LOSS)
    run_id = start(app, "long-step", make_user("operator"))
    sweeps_during_step = 0

    def swept_until_finished():
        nonlocal sweeps_during_step
        step_running = _running_step(app, run_id, "slow")
        with app.app_context():
            end_lost_runs(db.session, stale_seconds=2)
            db.session.commit()
        if step_running:
            sweeps_during_step += 1
        return get_run(app, run_id).is_finished

    wait_for(swept_until_finished, timeout=30, what="the run finishing")
    run = get_run(app, run_id)
    assert run.status == "completed", (run.error_code, run.error_message)
    assert [(s.step_key, s.status) for s in run.steps] == [("slow", "completed"), ("after", "completed")]
    assert run.steps[0].duration_seconds > 2
    assert sweeps_during_step >= 5


def test_the_sweep_ends_only_running_runs_whose_heartbeat_is_stale(app, load_workflow, make_user):
    load_workflow(steps_workflow("many", [{"key": "a", "type": "noop"}, {"key": "b", "type": "noop"}]))
    email = make_user("operator")
    names = ("pending", "waiting", "waiting_for_approval", "completed", "failed", "cancelled", "error",
             "beating", "silent")
    runs = {name: start(app, "many", email) for name in names}
    now = utcnow()
    long_ago = now - timedelta(minutes=10)
    with app.app_context():
        for name, run_id in runs.items():
            db.session.execute(
                sa.update(Run).where(Run.id == run_id).values(
                    status="running" if name in ("beating", "silent") else name,
                    started_at=long_ago, heartbeat_at=now if name == "beating" else long_ago,
                )
            )
        db.session.add_all([
            StepRun(run_id=runs["silent"], step_key="a", step_type="noop", step_name="A", status="completed",
                    started_at=long_ago, finished_at=long_ago),
            StepRun(run_id=runs["silent"], step_key="b", step_type="noop", step_name="B", status="running",
                    started_at=long_ago),
        ])
        db.session.commit()

        assert end_lost_runs(db.session, stale_seconds=30) == 1
        db.session.commit()

    statuses = {name: get_run(app, run_id).status for name, run_id in runs.items()}
    assert statuses == {**{name: name for name in names[:-2]}, "beating": "running", "silent": "error"}
    silent = get_run(app, runs["silent"])
    assert silent.error_code == "WORKER_LOST"
    assert [(s.step_key, s.status) for s in silent.steps] == [("a", "completed"), ("b", "failed")]


def test_a_run_is_heartbeaten_only_while_its_job_holds_it(app, load_workflow, make_user, monkeypatch):
    load_workflow(steps_workflow("beats", [
        {"key": "w", "type": "wait", "with": {"seconds": 60}},
        {"key": "f", "type": "fail", "with": {"code": "NOPE", "message": "stops here"}},
    ]))
    monkeypatch.setitem(app.config, "HEARTBEAT_SECONDS", 0.01)
    run_id = start(app, "beats", make_user("operator"))

    with app.app_context():
        assert process_run(db.session, run_id).status == "waiting"
        assert heartbeats.beating() == set()
        assert process_run(db.session, run_id, resume=True).status == "failed"
        assert heartbeats.beating() == set()

        # While a job holds a running run, the process's heartbeat thread beats it; once the job lets go, never again
        # (even though the run still says running, as a killed job's run would).
        long_ago = utcnow() - timedelta(hours=1)
        db.session.execute(sa.update(Run).where(Run.id == run_id).values(status="running", heartbeat_at=long_ago))
        db.session.commit()

        def beaten_at():
            db.session.rollback()
            return db.session.scalar(sa.select(Run.heartbeat_at).where(Run.id == run_id))

        with heartbeats.beat(db.engine, run_id, 0.01):
            assert heartbeats.beating() == {run_id}
            wait_for(lambda: beaten_at() > long_ago, timeout=5)
        threading.Event().wait(0.05)  # a beat already under way when the block ended may still land
        last = beaten_at()
        threading.Event().wait(0.1)
        assert beaten_at() == last
        assert heartbeats.beating() == set()
