"""The job rq-scheduler fires when an approval's time is up."""
from app.extensions import db
from app.services.runs.approvals import expire_approval as expire
from jobs import get_app


def expire_approval(run_id: int, step_run_id: int) -> bool:
    """Reject the run if nobody approved or rejected its approval step in time (nothing happens once decided)."""
    with get_app().app_context():
        try:
            expired = expire(db.session, run_id, step_run_id)
            db.session.commit()
            return expired
        finally:
            db.session.remove()
