"""Jobs that execute and resume runs."""
from app.extensions import db
from app.services.execution import process_run
from jobs import get_app


def execute_run(run_id: int) -> str:
    """Claim a pending run and execute its steps."""
    with get_app().app_context():
        try:
            return process_run(db.session, run_id).status
        finally:
            db.session.remove()


def resume_run(run_id: int) -> str:
    """Resume a run whose wait step is over."""
    with get_app().app_context():
        try:
            return process_run(db.session, run_id, resume=True).status
        finally:
            db.session.remove()
