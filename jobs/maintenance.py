"""Maintenance jobs the scheduler fires: retention."""
import logging
from datetime import timedelta

from app.extensions import db
from app.services.retention import prune_runs as prune
from jobs import get_app

log = logging.getLogger(__name__)


def prune_runs(days: int) -> None:
    """Delete finished runs older than `days` days, with their step runs and job log (FLOWDESK_RETENTION_DAYS)."""
    with get_app().app_context():
        try:
            report = prune(db.session, timedelta(days=days))
        finally:
            db.session.remove()
    log.info("retention: deleted %s runs, %s step runs and %s log lines finished before %s",
             report.runs, report.step_runs, report.log_lines, report.cutoff)
