"""Safety limits (R11): a run that executes more steps than its workflow's max actions, or executes longer than its
max runtime, ends as an error naming the limit; time parked is not runtime; a retry runs under the settings of now;
the workflow's job timeout is the RQ time limit of its run's jobs."""
import time

import sqlalchemy as sa
from rq.job import Job

from app.extensions import db, queues
from app.models import Run, StepRun, User, Workflow
from app.services.execution.executor import process_run
from app.services.execution.queueing import execute_job_id
from app.services.runs.retry import retry_run
from tests.factories import get_run, start, steps_workflow

LOGS = [{"key": k, "type": "log", "with": {"message": f"step {k}"}} for k in ("a", "b", "c")]


def _set(app, key: str, **settings) -> None:
    with app.app_context():
        db.session.execute(sa.update(Workflow).where(Workflow.key == key).values(**settings))
        db.session.commit()


def _run(app, run_id: int, resume: bool = False) -> str:
    with app.app_context():
        try:
            return process_run(db.session, run_id, resume=resume).status
        finally:
            db.session.remove()


def _steps(app, run_id: int) -> list[tuple[str, str]]:
    with app.app_context():
        rows = db.session.execute(
            sa.select(StepRun.step_key, StepRun.status).where(StepRun.run_id == run_id).order_by(StepRun.id))
        return [tuple(row) for row in rows]


def test_a_run_that_reaches_max_actions_ends_as_an_error_naming_the_limit(app, load_workflow, make_user):
    load_workflow(steps_workflow("acts", LOGS))
    _set(app, "acts", max_actions=2)
    run_id = start(app, "acts", make_user("operator"))

    assert _run(app, run_id) == "error"
    run = get_run(app, run_id)
    assert run.error_code == "LIMIT_ACTIONS"
    assert "max actions per run (2" in run.error_message and "'c'" in run.error_message
    assert _steps(app, run_id) == [("a", "completed"), ("b", "completed")]  # the third never began
    assert run.actions_taken == 2


def test_the_run_page_shows_the_limits_and_what_the_run_used(app, client, load_workflow, login_as):
    load_workflow(steps_workflow("shown", LOGS))
    _set(app, "shown", max_actions=2, max_runtime_seconds=600)
    run_id = start(app, "shown", login_as("operator"))
    _run(app, run_id)

    page = client.get(f"/runs/{run_id}").get_data(as_text=True)
    assert "Safety limits" in page and "2 of 2 actions" in page and "s of 600 s runtime" in page
    assert "LIMIT_ACTIONS" in page


def test_a_run_over_its_max_runtime_stops_before_the_next_step(app, load_workflow, make_user, live_server):
    load_workflow(steps_workflow("slowpoke", [
        {"key": "slow", "type": "http_request", "with": {"url": "{{ vars.sandbox_url }}/slow?seconds=1.2"}},
        {"key": "after", "type": "log", "with": {"message": "never"}},
    ]))
    _set(app, "slowpoke", max_runtime_seconds=1)
    run_id = start(app, "slowpoke", make_user("operator"))

    assert _run(app, run_id) == "error"
    run = get_run(app, run_id)
    assert run.error_code == "LIMIT_RUNTIME"
    assert "max runtime (1 s" in run.error_message and "'after'" in run.error_message
    assert _steps(app, run_id) == [("slow", "completed")]
    assert run.executed_seconds >= 1.2


def test_time_parked_on_a_wait_is_not_runtime(app, load_workflow, make_user):
    load_workflow(steps_workflow("parks", [
        {"key": "w", "type": "wait", "with": {"seconds": 60}},
        {"key": "done", "type": "log", "with": {"message": "resumed"}},
    ]))
    _set(app, "parks", max_runtime_seconds=1)
    run_id = start(app, "parks", make_user("operator"))

    assert _run(app, run_id) == "waiting"
    time.sleep(1.2)  # parked longer than the limit
    assert _run(app, run_id, resume=True) == "completed"
    assert get_run(app, run_id).executed_seconds < 1


def test_a_retry_runs_under_the_workflow_settings_of_now_with_its_counts_afresh(app, load_workflow, make_user):
    load_workflow(steps_workflow("again", LOGS))
    _set(app, "again", max_actions=2)
    email = make_user("operator")
    run_id = start(app, "again", email)
    assert _run(app, run_id) == "error"

    _set(app, "again", max_actions=5)
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.email == email))
        plan = retry_run(db.session, db.session.get(Run, run_id), user)
        db.session.commit()
    assert plan.resume_at == "c"
    run = get_run(app, run_id)
    assert (run.max_actions, run.actions_taken) == (5, 0)
    assert _run(app, run_id) == "completed"


def test_the_workflow_job_timeout_is_the_time_limit_of_its_runs_jobs(app, load_workflow, make_user):
    load_workflow(steps_workflow("timed", LOGS))
    _set(app, "timed", timeout_seconds=42)
    run_id = start(app, "timed", make_user("operator"))

    with app.app_context():
        job = Job.fetch(execute_job_id(run_id, 1), connection=queues.connection)
    assert job.timeout == 42
    assert get_run(app, run_id).job_timeout_seconds == 42

    load_workflow(steps_workflow("untimed", LOGS))
    other = start(app, "untimed", make_user("operator", "other@test.example"))
    with app.app_context():
        job = Job.fetch(execute_job_id(other, 1), connection=queues.connection)
        assert job.timeout == app.config["RUN_JOB_TIMEOUT"]
