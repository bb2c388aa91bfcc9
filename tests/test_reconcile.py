"""No run is lost when Redis loses its jobs: the reconciler re-enqueues pending runs and re-schedules waits."""
from datetime import timedelta

import sqlalchemy as sa

from app.extensions import db, queues
from app.models import Run
from tests.factories import get_run, start, steps_workflow, work_once


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
    from app.scheduler import FlowdeskScheduler

    load_workflow(steps_workflow("tick", [{"key": "a", "type": "noop"}]))
    run_id = start(app, "tick", make_user("operator"))
    with app.app_context():
        queues.connection.flushdb()
    _age(app, run_id, 120)
    with app.app_context():
        scheduler = FlowdeskScheduler(connection=queues.connection, interval=1)
        scheduler.flask_app = app
        scheduler.reconcile_every = 0
        scheduler.enqueue_jobs()
        assert queues.queue("default").count == 1
        assert db.session.scalar(sa.select(Run.status).where(Run.id == run_id)) == "pending"
