"""Rows for tests: workflows from small definitions, users, and runs started through the real service;
and small helpers to wait for a condition and to find a process's children."""
import time
from pathlib import Path

import sqlalchemy as sa

from app.extensions import db
from app.models import Run, User, Workflow
from app.services.runs import start_run


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


def get_run(app, run_id: int) -> Run:
    """A fresh copy of the run, with its steps loaded."""
    with app.app_context():
        db.session.expire_all()
        run = db.session.get(Run, run_id)
        _ = list(run.steps)
        db.session.expunge_all()
        return run


def work_once(app, queue_names=("default",)) -> None:
    """Run a real forking FlowdeskWorker over what is queued now, leaving scheduled jobs (resumes) alone."""
    import jobs
    from app.extensions import queues
    from app.worker import FlowdeskWorker

    with app.app_context():
        db.session.remove()
        jobs.bind_app(app)
        FlowdeskWorker.flask_app = app
        qs = [queues.queue(name) for name in queue_names]
        FlowdeskWorker(qs, connection=queues.connection).work(burst=True, logging_level="WARNING")


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
