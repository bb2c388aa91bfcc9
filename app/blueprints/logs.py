"""Logs across a workflow's runs: find log lines by record key or text, and export its error lines by date."""
from flask import Blueprint, render_template, request
from flask_login import current_user

from app.extensions import db
from app.queries.csv import csv_response
from app.queries.logs import ERROR_COLUMNS, DateRange, LogFilter, workflow_error_rows, workflow_log_page
from app.security import Capability, can, get_workflow_or_404, requires
from app.web.inputs import id_arg

bp = Blueprint("logs", __name__)
PAGE = 100


@bp.get("/workflows/<key>/logs")
@requires(Capability.VIEW_RUNS)
def workflow_logs(key: str):
    """Find the log lines of a workflow's runs that carry a record key or match text, newest first."""
    workflow = get_workflow_or_404(db.session, key, current_user)
    log_filter = LogFilter.from_args(request.args)
    dates = DateRange.from_args(request.args)
    lines, next_before = [], None
    if log_filter.terms:
        technical = can(current_user, Capability.VIEW_TECHNICAL_LOGS)
        lines, next_before = workflow_log_page(
            db.session, workflow.id, log_filter, dates, technical, id_arg("before"), PAGE,
        )
    return render_template(
        "logs/workflow.html", workflow=workflow, filter=log_filter, dates=dates, lines=lines,
        next_before=next_before, older_args={**log_filter.to_args(), **dates.to_args(), "before": next_before},
    )


@bp.get("/workflows/<key>/errors.csv")
@requires(Capability.EXPORT_DATA)
def workflow_errors_csv(key: str):
    """Download every error line of a workflow's runs between two dates (the last 30 days by default) as CSV."""
    workflow = get_workflow_or_404(db.session, key, current_user)
    dates = DateRange.from_args(request.args)
    technical = can(current_user, Capability.VIEW_TECHNICAL_LOGS)
    filename = f"flowdesk-{workflow.key}-errors-{dates.since}-to-{dates.until}.csv"
    return csv_response(filename, ERROR_COLUMNS, workflow_error_rows(db.session, workflow.id, dates, technical))
