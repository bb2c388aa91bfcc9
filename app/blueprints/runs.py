"""Runs: the list, a run's detail page (live while active), its job log tail, and cancelling."""
import sqlalchemy as sa
from flask import Blueprint, abort, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user

from app.engine.states import ACTIVE, RunStatus
from app.extensions import db, htmx, queues
from app.models import Run
from app.models.log import LEVELS
from app.queries.csv import csv_response
from app.queries.logs import RUN_LOG_COLUMNS, LogFilter, run_log_query, run_log_rows
from app.security import Capability, can, get_run_or_404, requires, visible_workflow_ids
from app.timeutil import utcnow
from app.services.runs import PermissionDenied, cancel_run
from app.web.inputs import id_arg

bp = Blueprint("runs", __name__)
PAGE = 50
LOG_PAGE = 500


@bp.get("/runs")
@requires(Capability.VIEW_RUNS)
def index():
    """List runs newest first, a page at a time (keyset pagination by id)."""
    before = id_arg("before")
    query = (
        sa.select(Run)
        .where(Run.workflow_id.in_(visible_workflow_ids(db.session, current_user)))
        .order_by(Run.id.desc())
        .limit(PAGE + 1)
    )
    if before:
        query = query.where(Run.id < before)
    rows = db.session.scalars(query).all()
    runs, more = rows[:PAGE], len(rows) > PAGE
    return render_template("runs/list.html", runs=runs, next_before=runs[-1].id if more else None)


def _workers_for(queue_name: str) -> int:
    from rq import Worker

    try:
        return sum(1 for w in Worker.all(connection=queues.connection) if queue_name in w.queue_names())
    except Exception:
        return -1


@bp.get("/runs/<int:run_id>")
@requires(Capability.VIEW_RUNS)
def detail(run_id: int):
    """Show a run: overview, progress and steps, refreshed while it is active, and its job log."""
    run = get_run_or_404(db.session, run_id, current_user)
    context = _panel_context(run)
    if htmx and htmx.target == "run-panel" and not htmx.history_restore_request:
        return render_template("runs/_run.html", **context)
    context.update(_log_context(run, after=0, log_filter=LogFilter.from_args(request.args)))
    return render_template("runs/detail.html", **context)


def _panel_context(run: Run) -> dict:
    workers = _workers_for(run.queue) if run.status == RunStatus.PENDING.value else None
    return {"run": run, "steps": run.steps, "workers": workers}


def _log_context(run: Run, after: int, log_filter: LogFilter) -> dict:
    # Read the status before the lines: a run's last lines commit with its final status.
    live = run.status in {s.value for s in ACTIVE}
    technical = can(current_user, Capability.VIEW_TECHNICAL_LOGS)
    lines = db.session.scalars(run_log_query(run.id, log_filter, technical, after).limit(LOG_PAGE)).all()
    more = len(lines) == LOG_PAGE
    return {
        "run": run,
        "lines": lines,
        "last_id": lines[-1].id if lines else after,
        "filter": log_filter,
        "level": log_filter.level,
        "levels": LEVELS,
        "live": live,
        "more": more,
    }


@bp.get("/runs/<int:run_id>/log")
@requires(Capability.VIEW_RUNS)
def log(run_id: int):
    """The job log: the whole panel (for a new level or search) or, with ?after=ID, only the newer lines."""
    run = get_run_or_404(db.session, run_id, current_user)
    after = id_arg("after")
    log_filter = LogFilter.from_args(request.args)
    if after is not None:
        return render_template("runs/_log_rows.html", **_log_context(run, after=after, log_filter=log_filter))
    page_url = url_for("runs.detail", run_id=run.id, **log_filter.to_args())
    if not htmx:
        return redirect(page_url)
    context = _log_context(run, after=0, log_filter=log_filter)
    response = make_response(render_template("runs/_log.html", **context))
    # The address bar shows the run page with this filter, so it can be bookmarked, shared and reloaded.
    response.headers["HX-Push-Url"] = page_url
    return response


@bp.get("/runs/<int:run_id>/log.csv")
@requires(Capability.EXPORT_DATA)
def log_csv(run_id: int):
    """Download exactly the log lines the run page shows for this filter, as CSV."""
    run = get_run_or_404(db.session, run_id, current_user)
    log_filter = LogFilter.from_args(request.args)
    technical = can(current_user, Capability.VIEW_TECHNICAL_LOGS)
    filename = f"flowdesk-run-{run.id}-log-{utcnow():%Y-%m-%d}.csv"
    return csv_response(filename, RUN_LOG_COLUMNS, run_log_rows(db.session, run.id, log_filter, technical))


@bp.post("/runs/<int:run_id>/cancel")
@requires(Capability.CANCEL_RUN)
def cancel(run_id: int):
    """Cancel an active run: at once when pending or waiting, after the current step when running."""
    run = get_run_or_404(db.session, run_id, current_user)
    try:
        result = cancel_run(db.session, run, current_user)
    except PermissionDenied:
        abort(403)
    db.session.commit()
    messages = {
        "cancelled": ("Run cancelled.", "success"),
        "requested": ("Cancel requested: the run stops after its current step.", "info"),
        "finished": (f"The run had already finished ({RunStatus(result.status).label.lower()}).", "warning"),
    }
    flash(*messages[result.outcome])
    db.session.expire_all()
    if htmx:
        return render_template("runs/_run.html", **_panel_context(db.session.get(Run, run_id)))
    return redirect(url_for("runs.detail", run_id=run_id))
