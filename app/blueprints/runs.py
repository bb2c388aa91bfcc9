"""Runs: the history lists, a run's detail page (live while active), its job log tail, cancelling, replaying and
comparing a run with its replay."""
import json
from dataclasses import replace
from functools import lru_cache

from flask import (
    Blueprint, Response, flash, make_response, redirect, render_template, request, session, url_for,
)
from flask_login import current_user

from app.engine.states import ACTIVE, RunStatus
from app.extensions import db, htmx, queues
from app.models import Run, Workflow
from app.queries import runs as runs_queries
from app.queries import workflows as workflow_queries
from app.queries.compare import compare_runs
from app.queries.csv import csv_response
from app.queries.filters import RANGES, RunFilter
from app.queries.logs import RUN_LOG_COLUMNS, LogFilter, run_log_after, run_log_newer, run_log_newest, run_log_rows
from app.security import (
    Capability, can, get_run_or_404, get_workflow_or_404, requires, run_glance_or_404, visible_workflow_ids,
    visible_workflows,
)
from app.security.polls import AFTER, RUN_ID, poll_statement, quick_glance
from app.services.errors import Invalid, ServiceError
from app.services.runs import (
    CancelOutcome, Decision, ReplayPlan, cancel_run, decide as decide_step, plan_replay, plan_retry, replay_refusal,
    replay_run, retry_run, retry_step,
)
from app.timeutil import utcnow
from app.vocabulary import KINDS, LOG_LEVELS, TRIGGERS
from app.web.inputs import BadInput, checks_own_form_fields, id_arg

bp = Blueprint("runs", __name__)
LOG_PAGE = 200  # log lines a page: the first view, each "Load older lines", each catch-up of the tail
_PANEL_STEPS = runs_queries.panel_steps(RUN_ID)
_PANEL_POLL = poll_statement(*runs_queries.panel_columns(_PANEL_STEPS), join=_PANEL_STEPS)


@bp.get("/runs")
@requires(Capability.VIEW_RUNS)
def index():
    """Every run the user may see: active ones live at the top, finished ones below, filtered by the query string."""
    return _history(RunFilter.from_args(request.args), workflow=None)


@bp.get("/workflows/<key>/history")
@requires(Capability.VIEW_RUNS)
def history(key: str):
    """One workflow's runs: the same list, filters and exports, with a version filter."""
    workflow = get_workflow_or_404(db.session, key, current_user)
    f = RunFilter.from_args(request.args)
    return _history(replace(f, workflows=(workflow.key,)), workflow=workflow)


@bp.get("/runs.csv")
@requires(Capability.EXPORT_DATA)
def export():
    """Download the runs the filters select (all of them, not a page) as CSV, streamed."""
    return _export(RunFilter.from_args(request.args), "runs")


@bp.get("/workflows/<key>/history.csv")
@requires(Capability.EXPORT_DATA)
def export_history(key: str):
    """Download one workflow's filtered runs as CSV, streamed."""
    workflow = get_workflow_or_404(db.session, key, current_user)
    return _export(replace(RunFilter.from_args(request.args), workflows=(workflow.key,)), f"{workflow.key}-runs")


RUN_CSV_HEADER = ["run", "workflow", "version", "status", "trigger", "context key", "queue", "queued at",
                  "started at", "finished at", "duration seconds", "error code", "error message", "replay of"]


def _export(f: RunFilter, what: str):
    lines = runs_queries.export_csv(db.session, f, visible_workflow_ids(db.session, current_user))
    return csv_response(f"flowdesk-{what}-{utcnow():%Y-%m-%d}.csv", RUN_CSV_HEADER, lines=lines)


def _history(f: RunFilter, workflow: Workflow | None):
    ids = visible_workflow_ids(db.session, current_user)
    endpoint, fixed = ("runs.history", {"key": workflow.key}) if workflow else ("runs.index", {})
    active = runs_queries.active_runs(db.session, f, ids)
    query = f.to_args(before=f.before, after=f.after).to_dict(flat=False)
    # Which runs are active, so a poll can tell when one has finished and the finished list must refresh.
    active_seen = ".".join(str(r.id) for r in active) or "none"
    context = {
        "filter": f, "workflow": workflow, "endpoint": endpoint, "fixed": fixed, "active": active,
        "active_seen": active_seen,
        "url": lambda args: url_for(endpoint, **fixed, **args.to_dict(flat=False)),
        "clear_url": url_for(endpoint, **fixed),
        "export_url": url_for("runs.export_history" if workflow else "runs.export", **fixed,
                              **f.to_args().to_dict(flat=False)),
        "section_url": lambda section: url_for(endpoint, **fixed, **query, section=section),
    }
    section = request.args.get("section")
    if section == "active":
        response = make_response(render_template("runs/_active.html", **context))
        if request.args.get("seen", active_seen) != active_seen:
            response.headers["HX-Trigger"] = "runs-changed"
        return response
    page = runs_queries.runs_page(db.session, f, ids, finished_only=True)
    context.update(
        page=page,
        count=runs_queries.count_runs(db.session, f, ids, finished_only=True),
        count_cap=runs_queries.COUNT_CAP,
        statuses=list(RunStatus), triggers=TRIGGERS, kinds=KINDS, ranges=RANGES,
        queues=runs_queries.queues_of(db.session, ids),
        workflows=[] if workflow else visible_workflows(db.session, current_user),
        versions=workflow_queries.version_numbers(db.session, workflow) if workflow else [],
    )
    if section == "finished":
        return render_template("runs/_finished.html", **context)
    if htmx and htmx.target == "runs-results" and not htmx.history_restore_request:
        response = make_response(render_template("runs/_results.html", **context))
        # The address bar gets the filter's own query string, without the form's empty fields.
        response.headers["HX-Push-Url"] = context["url"](f.to_args(before=f.before, after=f.after))
        return response
    return render_template("runs/list.html", **context)


def _workers_for(queue_name: str) -> int:
    from rq import Worker

    try:
        return sum(1 for w in Worker.all(connection=queues.connection) if queue_name in w.queue_names())
    except Exception:
        return -1


@bp.get("/runs/<int:run_id>")
def detail(run_id: int):
    """Show a run: overview, progress and steps, refreshed while it is active, and its job log."""
    if _panel_poll() and _panel_unchanged(run_id):
        return Response(status=204)
    return _detail(run_id)


@requires(Capability.VIEW_RUNS)
def _detail(run_id: int):
    if _panel_poll():
        workers, marker = _panel_state(run_id)
        # A poll whose panel has not changed gets an empty 204, which htmx leaves unswapped, before the run is
        # loaded or anything rendered; a pending flash message still renders.
        if request.args.get("seen") == marker and not session.get("_flashes"):
            return Response(status=204)
        run = get_run_or_404(db.session, run_id, current_user)
        return render_template("runs/_run.html", **_panel_context(run, workers, marker))
    workers, marker = _panel_state(run_id)  # before the run: a marker never describes a newer run than the page
    run = get_run_or_404(db.session, run_id, current_user)
    context = _panel_context(run, workers, marker)
    context.update(_log_context(run, LogFilter.from_args(request.args)))
    return render_template("runs/detail.html", **context)


def _panel_poll() -> bool:
    return bool(htmx) and htmx.target == "run-panel" and not htmx.history_restore_request


def _panel_unchanged(run_id: int) -> bool:
    """The quick path (app/security/polls.py): whether the panel the poll last saw is still current, in one
    statement. False means "take the regular path", never "refuse"."""
    seen = request.args.get("seen")
    if not seen or session.get("_flashes"):
        return False
    glance = quick_glance(_PANEL_POLL, Capability.VIEW_RUNS, run_id=run_id)
    if glance is None:
        return False
    row, user = glance
    return seen == _marker(row, user, _workers(row))


def _panel_state(run_id: int) -> tuple[int | None, str]:
    """The workers serving a pending run's queue, and the marker that changes when the panel would (404 for a run
    the user may not see)."""
    steps = runs_queries.panel_steps(run_id)
    row = run_glance_or_404(db.session, run_id, current_user, *runs_queries.panel_columns(steps), join=steps)
    workers = _workers(row)
    return workers, _marker(row, current_user, workers)


def _workers(row) -> int | None:
    return _workers_for(row.queue) if row.status == RunStatus.PENDING.value else None


def _marker(row, user, workers: int | None) -> str:
    return runs_queries.panel_marker(row, user.id, user.role, bool(workers))


def _panel_context(run: Run, workers: int | None, marker: str) -> dict:
    return {"run": run, "steps": run.steps, "workers": workers, "marker": marker}


def _log_context(run: Run, log_filter: LogFilter) -> dict:
    """The log panel as first shown: the newest lines, a control for older ones, the tail from the newest."""
    # Read the status before the lines: a run's last lines commit with its final status.
    live = run.is_active
    technical = can(current_user, Capability.VIEW_TECHNICAL_LOGS)
    lines, older = run_log_newest(db.session, run.id, log_filter, technical, None, LOG_PAGE)
    return _rows_context(run, log_filter, lines, live=live, older=older, more=False, last_id=0)


def _rows_context(run: Run, log_filter: LogFilter, lines: list, *, live: bool, older: bool, more: bool,
                  last_id: int, tail: bool = True) -> dict:
    return {
        "run": run,
        "lines": lines,
        "first_id": lines[0].id if lines else None,
        "last_id": lines[-1].id if lines else last_id,
        "filter": log_filter,
        "level": log_filter.level,
        "levels": LOG_LEVELS,
        "live": live,
        "more": more,
        "older": older,
        "tail": tail,
    }


@bp.get("/runs/<int:run_id>/retry")
@requires(Capability.RUN_WORKFLOW)
def retry_plan(run_id: int):
    """What retrying a failed run would do, step by step, with the button that does it."""
    run = get_run_or_404(db.session, run_id, current_user)
    return render_template("runs/retry.html", run=run, plan=plan_retry(db.session, run))


@bp.post("/runs/<int:run_id>/retry")
@requires(Capability.RUN_WORKFLOW)
def retry(run_id: int):
    """Queue the next attempt of a failed run, reusing its completed steps; back to the run's page."""
    run = get_run_or_404(db.session, run_id, current_user)
    plan = retry_run(db.session, run, current_user)
    db.session.commit()
    flash(f"Attempt {plan.attempt} queued: {len(plan.reused)} completed step(s) reused.", "success")
    return redirect(url_for("runs.detail", run_id=run_id))


@bp.post("/runs/<int:run_id>/steps/<step_key>/retry")
@requires(Capability.RUN_WORKFLOW)
def retry_failed_step(run_id: int, step_key: str):
    """Run the step a failed run stopped at again, with the same input, in the same attempt."""
    run = get_run_or_404(db.session, run_id, current_user)
    step = retry_step(db.session, run, step_key, current_user)
    db.session.commit()
    flash(f"Step '{step.step_name}' queued to run again with the same input.", "success")
    if htmx:
        workers, marker = _panel_state(run_id)
        db.session.refresh(run)  # read after the marker, so the marker never describes a newer run than the panel
        return render_template("runs/_run.html", **_panel_context(run, workers, marker))
    return redirect(url_for("runs.detail", run_id=run_id))


@bp.get("/runs/<int:run_id>/dialog")
def dialog(run_id: int):
    """The Run dialog's live view of a run; a poll whose view has not changed gets an empty 204 (the panel's
    marker says when)."""
    if _panel_unchanged(run_id):
        return Response(status=204)
    return _dialog(run_id)


@requires(Capability.VIEW_RUNS)
def _dialog(run_id: int):
    workers, marker = _panel_state(run_id)
    if not htmx:
        return redirect(url_for("runs.detail", run_id=run_id))
    if request.args.get("seen") == marker:
        return Response(status=204)
    run = get_run_or_404(db.session, run_id, current_user)
    return render_template("runs/_dialog.html", **_panel_context(run, workers, marker))


@bp.get("/runs/<int:run_id>/log")
def log(run_id: int):
    """The job log: the whole panel (for a new level or search), with ?after=ID only the newer lines (204 when
    there are none yet), with ?before=ID the page of lines before that one."""
    if _tail_unchanged(run_id):
        return Response(status=204)
    return _log(run_id)


def _tail_unchanged(run_id: int) -> bool:
    """The quick path (app/security/polls.py): whether a live run's tail has no line after `after` that the filter
    shows, in one statement. False means "take the regular path", never "refuse"."""
    try:
        after = id_arg("after")
        log_filter = LogFilter.from_args(request.args)
    except BadInput:
        return False
    if after is None:
        return False
    glance = quick_glance(_tail_poll(log_filter), Capability.VIEW_RUNS, run_id=run_id, after=after)
    # Status and lines come from one statement, so from one snapshot: a run's last lines commit with its status.
    return glance is not None and RunStatus(glance[0].status) in ACTIVE and glance[0].newer is None


@lru_cache(maxsize=64)
def _tail_poll(log_filter: LogFilter):
    """The tail's quick statement for a filter, built once per filter (the default one nearly always)."""
    return poll_statement(Run.status, run_log_newer(RUN_ID, log_filter, AFTER).label("newer"))


@requires(Capability.VIEW_RUNS)
def _log(run_id: int):
    after = id_arg("after")
    before = id_arg("before")
    log_filter = LogFilter.from_args(request.args)
    technical = can(current_user, Capability.VIEW_TECHNICAL_LOGS)
    if after is not None:
        # The tail: the run's status (read before its lines: a run's last lines commit with its final status) and
        # the newer lines; with none yet, an empty 204 and no run loaded.
        live = RunStatus(run_glance_or_404(db.session, run_id, current_user, Run.status).status) in ACTIVE
        lines, more = run_log_after(db.session, run_id, log_filter, technical, after, LOG_PAGE)
        if not lines and live:
            return Response(status=204)
        run = get_run_or_404(db.session, run_id, current_user)
        context = _rows_context(run, log_filter, lines, live=live, older=False, more=more, last_id=after)
        return render_template("runs/_log_rows.html", **context)
    run = get_run_or_404(db.session, run_id, current_user)
    if before is not None:
        lines, older = run_log_newest(db.session, run.id, log_filter, technical, before, LOG_PAGE)
        context = _rows_context(run, log_filter, lines, live=False, older=older, more=False, last_id=0, tail=False)
        return render_template("runs/_log_rows.html", **context)
    page_url = url_for("runs.detail", run_id=run.id, **log_filter.to_args())
    if not htmx:
        return redirect(page_url)
    response = make_response(render_template("runs/_log.html", **_log_context(run, log_filter)))
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
    result = cancel_run(db.session, run, current_user)
    db.session.commit()
    messages = {
        CancelOutcome.CANCELLED: ("Run cancelled.", "success"),
        CancelOutcome.REQUESTED: ("Cancel requested: the run stops after its current step.", "info"),
        CancelOutcome.FINISHED: (f"The run had already finished ({result.status.label.lower()}).", "warning"),
    }
    db.session.expire_all()
    if htmx and htmx.target == "dialog-content":
        run = db.session.get(Run, run_id)
        return render_template("runs/_dialog.html", **_panel_context(run, *_panel_state(run.id)))
    flash(*messages[result.outcome])
    if htmx:
        run = db.session.get(Run, run_id)
        return render_template("runs/_run.html", **_panel_context(run, *_panel_state(run.id)))
    return redirect(url_for("runs.detail", run_id=run_id))


REPLAY_FIELDS = ("csrf_token", "replay-when", "replay-at", "replay-record")  # the replay form's own fields


@bp.app_template_global("replay_refusal")
def replay_refusal_for(run: Run) -> str | None:
    """Why the signed-in user may not replay `run` now (the Replay action's hover text), or None."""
    refusal = replay_refusal(run, current_user)
    return refusal.message if refusal else None


@bp.get("/runs/<int:run_id>/replay")
@requires(Capability.REPLAY_RUN)
def replay_form(run_id: int):
    """Before replaying a run: what the replay reuses and which version it runs, with its values to edit."""
    run = get_run_or_404(db.session, run_id, current_user)
    plan = plan_replay(db.session, run, current_user)
    values = {name: value for name, value in plan.params.items() if value is not None}
    record = "" if plan.record is None else json.dumps(plan.record, indent=2, ensure_ascii=False)
    return _render_replay(plan, values, record, when="now", at="")


@bp.post("/runs/<int:run_id>/replay")
@checks_own_form_fields
@requires(Capability.REPLAY_RUN)
def replay(run_id: int):
    """Replay a finished run with the form's values, now or at the chosen time; bad values show at their fields."""
    run = get_run_or_404(db.session, run_id, current_user)
    values = {name: value for name, value in request.form.items() if name not in REPLAY_FIELDS}
    when = "later" if request.form.get("replay-when") == "later" else "now"
    at = request.form.get("replay-at", "")
    record = request.form.get("replay-record")
    try:
        new_run = replay_run(db.session, run, current_user, params=values, record=record, from_form=True,
                             at=at if when == "later" else None)
    except Invalid as exc:
        db.session.rollback()
        plan = plan_replay(db.session, run, current_user)
        return _render_replay(plan, values, record or "", when=when, at=at, errors=exc.fields), exc.status
    db.session.commit()
    flash(f"Run #{new_run.id} replays run #{run.id}"
          + (f"; it starts at {new_run.not_before:%Y-%m-%d %H:%M} UTC." if new_run.not_before else "."), "success")
    target = url_for("runs.detail", run_id=new_run.id)
    if htmx:
        response = make_response("", 200)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target, code=303)


def _render_replay(plan: ReplayPlan, values: dict, record: str, *, when: str, at: str, errors: dict | None = None):
    """The replay form alone in the run page's replay panel for htmx, the whole page otherwise."""
    in_panel = bool(htmx) and htmx.target == "replay-panel" and not htmx.history_restore_request
    context = {"plan": plan, "run": plan.source, "values": values, "record": record, "when": when, "at": at,
               "errors": errors or {}, "now": utcnow(), "in_panel": in_panel}
    if in_panel:
        return render_template("runs/_replay_form.html", **context)
    return render_template("runs/replay.html", **context)


@bp.get("/runs/<int:run_id>/compare/<int:other_id>")
@requires(Capability.VIEW_RUNS)
def compare(run_id: int, other_id: int):
    """Two runs side by side (a run and its replay): params, version and definition, steps, error and result."""
    first = get_run_or_404(db.session, run_id, current_user)
    second = get_run_or_404(db.session, other_id, current_user)
    return render_template("runs/compare.html", comparison=compare_runs(first, second))


@bp.post("/runs/<int:run_id>/approval")
@requires(Capability.APPROVE_STEP)
def decide(run_id: int):
    """Approve or reject the step a run waits on, with an optional comment: the run panel again (htmx), or back to
    the run page (or the "Waiting for me" list it was sent from); a bad comment is shown at the field."""
    run = get_run_or_404(db.session, run_id, current_user)
    values = {"comment": request.form.get("comment", "")}
    back = (url_for("approvals.index") if request.form.get("next") == "approvals"
            else url_for("runs.detail", run_id=run_id))
    try:
        result = decide_step(db.session, run, current_user, request.form.get("decision"), values["comment"])
    except ServiceError as exc:  # said in place: a bad comment at its field, anything else above the steps
        db.session.rollback()
        if not htmx:
            raise
        db.session.expire_all()
        if not exc.fields:
            flash(exc.message, "warning")
        context = _panel_context(db.session.get(Run, run_id), *_panel_state(run_id))
        return (render_template(_decided_template(), approval_values=values, approval_errors=exc.fields, **context),
                exc.status)
    db.session.commit()
    db.session.expire_all()
    if _decided_template() == "runs/_dialog.html":  # the Run dialog shows the run going on, or rejected
        run = db.session.get(Run, run_id)
        return render_template("runs/_dialog.html", **_panel_context(run, *_panel_state(run_id)))
    if result.decision is Decision.APPROVE:
        flash("Approved: the run goes on from the next step.", "success")
    else:
        flash("Rejected: the run ended as rejected.", "warning")
    if htmx:
        return render_template("runs/_run.html", **_panel_context(db.session.get(Run, run_id), *_panel_state(run_id)))
    return redirect(back, code=303)


def _decided_template() -> str:
    """Where a decision was taken: the Run dialog, or the run page's panel."""
    return "runs/_dialog.html" if htmx and htmx.target == "dialog-content" else "runs/_run.html"
