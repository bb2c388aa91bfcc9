"""Rows for tests: workflows from small definitions, users, runs started through the real service or
written straight into the database (make_run); and small helpers to wait for a condition and to find a
process's children."""
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from app.engine.states import FINISHED, RunStatus
from app.extensions import db
from app.models import LogEntry, Run, StepRun, User, Workflow
from app.services.runs import start_run
from app.timeutil import utcnow
from app.vocabulary import LogLevel


def steps_workflow(key: str, steps: list[dict], params: list[dict] | None = None, **extra) -> dict:
    return {"key": key, "name": key.replace("-", " ").capitalize(), "params": params or [], "steps": steps, **extra}


def start(app, key: str, email: str, params: dict | None = None, trigger: str = "manual") -> int:
    """Start a run as the user with `email` and commit (which enqueues it); returns the run id."""
    with app.app_context():
        workflow = db.session.scalar(sa.select(Workflow).where(Workflow.key == key))
        user = db.session.scalar(sa.select(User).where(User.email == email))
        run = start_run(db.session, workflow, user, params or {}, trigger=trigger)
        db.session.commit()
        return run.id


def make_run(
    app,
    workflow_key: str,
    status: str = "completed",
    *,
    queued_at: datetime | None = None,
    started_at: datetime | None = None,
    finished_at: datetime | None = None,
    params: dict | None = None,
    steps: int = 0,
    lines: int | Mapping[str, int] = 0,
    **fields,
) -> int:
    """Write a run of the published workflow `workflow_key` straight into the database, without executing
    it, and return its id: `steps` step runs and `lines` log lines (a number of info lines, or a count per
    level such as {"info": 3, "error": 1}), spread over the steps. Times default to a run that was queued a
    minute before it finished (finished now, if its status is a finished one; pending runs never started).
    Other Run columns (trigger, replay_of_id, error_code, ...) pass through `fields`."""
    status = RunStatus(status)
    if finished_at is None and status in FINISHED:
        finished_at = utcnow() if queued_at is None else queued_at + timedelta(minutes=1)
    if queued_at is None:
        queued_at = (finished_at or utcnow()) - timedelta(minutes=1)
    if started_at is None and status != RunStatus.PENDING:
        started_at = queued_at + timedelta(seconds=1)
    counts = {"info": lines} if isinstance(lines, int) else dict(lines)
    with app.app_context():
        workflow = db.session.scalar(sa.select(Workflow).where(Workflow.key == workflow_key))
        fields.setdefault("version_id", workflow.published_version_id)
        fields.setdefault("queue", workflow.queue)
        run = Run(
            workflow_id=workflow.id, workflow_key=workflow.key, workflow_name=workflow.name, status=status.value,
            params=params or {}, queued_at=queued_at, started_at=started_at, finished_at=finished_at,
            progress_done=steps, progress_total=steps, **fields,
        )
        db.session.add(run)
        db.session.flush()
        step_ids = []
        for number in range(steps):
            last = number == steps - 1
            step_status = _step_status(status) if last else "completed"
            step = StepRun(
                run_id=run.id, step_key=f"step-{number + 1}", step_type="log", step_name=f"Step {number + 1}",
                status=step_status, scheduled_at=started_at or queued_at, started_at=started_at,
                finished_at=finished_at if step_status in ("completed", "failed", "cancelled") else None,
                resume_at=utcnow() + timedelta(hours=1) if step_status == "waiting" else None,
            )
            db.session.add(step)
            db.session.flush()
            step_ids.append(step.id)
        rows = []
        for level, count in counts.items():
            for _ in range(count):
                n = len(rows)
                rows.append({
                    "run_id": run.id, "step_run_id": step_ids[n % len(step_ids)] if step_ids else None,
                    "created_at": started_at or queued_at, "level": level, "level_rank": LogLevel(level).rank,
                    "message": f"{level} line {n + 1}", "technical": False,
                })
        for start_at in range(0, len(rows), 5000):
            db.session.execute(sa.insert(LogEntry), rows[start_at:start_at + 5000])
        db.session.commit()
        return run.id


def _step_status(run_status: RunStatus) -> str:
    return {
        RunStatus.RUNNING: "running", RunStatus.WAITING: "waiting", RunStatus.WAITING_FOR_APPROVAL: "waiting",
        RunStatus.FAILED: "failed", RunStatus.ERROR: "failed", RunStatus.REJECTED: "failed",
        RunStatus.CANCELLED: "cancelled",
    }.get(run_status, "completed")


def get_run(app, run_id: int) -> Run:
    """A fresh copy of the run, with its steps loaded."""
    with app.app_context():
        db.session.expire_all()
        run = db.session.get(Run, run_id)
        _ = list(run.steps)
        db.session.expunge_all()
        return run


def work_once(app, queue_names=("default",)) -> None:
    """Run a real FlowdeskWorker (in this process, as `flask worker` does) over what is queued now, leaving
    scheduled jobs (resumes) alone."""
    from app.extensions import queues
    from jobs.worker import FlowdeskWorker

    with app.app_context():
        db.session.remove()
        qs = [queues.queue(name) for name in queue_names]
        FlowdeskWorker(qs, connection=queues.connection, app=app).work(burst=True, logging_level="WARNING")


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    """Poll `predicate` until it returns something truthy (returned), or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not met within {timeout} s")


def child_pids(pid: int) -> list[int]:
    """The direct children of process `pid` (read from /proc), or [] once it is gone."""
    pids = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            pids += [int(child) for child in (task / "children").read_text().split()]
    except FileNotFoundError:
        return []
    return pids


def typed_workflow(key: str = "typed") -> dict:
    """A one-step workflow with an optional parameter of each of the nine types."""
    return steps_workflow(key, [{"key": "a", "type": "noop"}], params=[
        {"name": "title", "type": "string"},
        {"name": "note", "type": "text"},
        {"name": "count", "type": "integer", "min": 0, "max": 1000},
        {"name": "ratio", "type": "number"},
        {"name": "notify", "type": "boolean"},
        {"name": "day", "type": "date"},
        {"name": "at", "type": "datetime"},
        {"name": "site", "type": "choice", "options": ["north", "south"]},
        {"name": "extra", "type": "json"},
    ])


def issue_api_token(app, email: str) -> str:
    """A new API token for the user with `email`."""
    from app.services.users import find_user, issue_token

    with app.app_context():
        token = issue_token(db.session, find_user(db.session, email))
        db.session.commit()
    return token


def run_count(app) -> int:
    """How many runs are stored."""
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(Run))
