"""The workflow list (published, drafts, archived), a workflow's page, its Run form and the Run dialog, and what
admins do to a workflow as a whole: publish, enable or disable, clone, archive, export."""
import json

from flask import Blueprint, Response, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app.extensions import db, htmx
from app.models import Run, Workflow
from app.queries import workflows as workflow_queries
from app.queries.filters import RunFilter
from app.queries.runs import runs_page
from app.security import Capability, can, get_run_or_404, get_workflow_or_404, requires
from app.security.policy import may_open_editor
from app.services import workflows as authoring
from app.services.errors import Invalid, ServiceError
from app.services.runs import definition_of, start_run
from app.vocabulary import KINDS, Trigger
from app.web.inputs import checks_own_form_fields, id_arg

bp = Blueprint("workflows", __name__)


@bp.app_template_global("editor_url")
def editor_url(key: str, section: str | None = None) -> str:
    """The editor of a workflow, at `section`."""
    return url_for("editor.edit", key=key, **({"section": section} if section else {}))


@bp.app_template_global("may_edit")
def may_edit(workflow: Workflow) -> bool:
    """Whether the signed-in user gets an Edit action: admins for every workflow, managers for published ones
    (their settings and schedule); nobody for an archived one."""
    return not workflow.is_archived and may_open_editor(current_user, workflow)


@bp.get("/")
@login_required
def home():
    """Send people to the workflow list."""
    return redirect(url_for("workflows.index"))


@bp.get("/workflows")
@requires(Capability.LIST_WORKFLOWS)
def index():
    """List the workflows the user may see, searchable by name or key and filtered by type; admins switch between
    the published ones, the drafts and the archived ones (`?state=`)."""
    q = request.args.get("q", "").strip()
    kind = request.args.get("kind", "")
    state = workflow_queries.list_state(request.args.get("state"), current_user)
    workflows = workflow_queries.workflow_list(db.session, current_user, state, q, kind)
    latest = workflow_queries.latest_runs(db.session, workflows)
    context = {"workflows": workflows, "last_runs": workflow_queries.last_run_times(db.session, latest),
               "latest_runs": latest,
               "newest": workflow_queries.newest_versions(db.session, workflows) if can(
                   current_user, Capability.VIEW_DRAFTS) else {}, "q": q, "kind": kind,
               "kinds": KINDS, "state": state, "states": list(workflow_queries.ListState)}
    if htmx and htmx.target == "workflow-table" and not htmx.history_restore_request:
        return render_template("workflows/_table.html", **context)
    return render_template("workflows/list.html", **context)


def _run_card_context(workflow: Workflow, values: dict | None = None, errors: dict | None = None, message=None):
    """What the Run card needs. `run_card` says whether there is one: only for a role that may run workflows,
    and only while the workflow can run (the page says why not otherwise)."""
    return {
        "workflow": workflow,
        "definition": definition_of(workflow.published_version) if workflow.published_version else None,
        "run_card": can(current_user, Capability.RUN_WORKFLOW) and workflow.can_run,
        "values": values or {},
        "errors": errors or {},
        "message": message,
    }


def _render_detail(workflow: Workflow, values: dict | None = None, errors: dict | None = None, message=None):
    recent = RunFilter(workflows=(workflow.key,), range="all", limit=10)
    runs = runs_page(db.session, recent, [workflow.id]).runs
    return render_template("workflows/detail.html", runs=runs, tab="overview",
                           **_run_card_context(workflow, values, errors, message))


@bp.get("/workflows/<key>")
@requires(Capability.LIST_WORKFLOWS)
def detail(key: str):
    """Show a workflow: what it does, its Run form and its recent runs; `?from_run=ID` fills the form with that
    run's values ("Run again with these values")."""
    workflow = get_workflow_or_404(db.session, key, current_user)
    return _render_detail(workflow, _values_of(workflow, id_arg("from_run")))


def _values_of(workflow: Workflow, run_id: int | None) -> dict:
    """The parameter values of run `run_id` of this workflow, as the Run form shows them; none for another
    workflow's run or one that does not exist (the form then shows its defaults)."""
    if run_id is None:
        return {}
    run = db.session.get(Run, run_id)
    if run is None or run.workflow_id != workflow.id:
        return {}
    return {name: value for name, value in (run.params or {}).items() if value is not None}


@bp.post("/workflows/<key>/runs")
@checks_own_form_fields
@requires(Capability.RUN_WORKFLOW)
def run(key: str):
    """Start a run from the Run form; bad values are shown next to their fields."""
    workflow = get_workflow_or_404(db.session, key, current_user)
    values = request.form.to_dict()
    values.pop("csrf_token", None)
    try:
        new_run = start_run(db.session, workflow, current_user, values, trigger=Trigger.MANUAL, from_form=True)
    except ServiceError as exc:  # the Run card says why in place: bad values next to their fields
        db.session.rollback()
        message = None if isinstance(exc, Invalid) else exc.message
        return _render_run_form(workflow, values, exc.fields, message), exc.status
    run_id = new_run.id  # read after the commit, it would cost a SELECT
    db.session.commit()
    target = url_for("runs.detail", run_id=run_id)
    if _in_dialog():
        # The dialog stays open and follows the run: its content loads the run's live status at once.
        return render_template("workflows/_dialog_started.html", run_id=run_id)
    if htmx:
        response = make_response("", 200)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target)


@bp.get("/workflows/<key>/run-dialog")
@requires(Capability.RUN_WORKFLOW)
def run_dialog(key: str):
    """The Run dialog's form; `from_run` fills it with that run's values (Test again). Without htmx, the
    workflow's page, whose Run form does the same."""
    workflow = get_workflow_or_404(db.session, key, current_user)
    values = {}
    source = id_arg("from_run")
    if source is not None:
        run = get_run_or_404(db.session, source, current_user)
        if run.workflow_id == workflow.id:
            values = {name: value for name, value in (run.params or {}).items() if value is not None}
    if not htmx:
        return redirect(url_for("workflows.detail", key=key))
    message = None if workflow.can_run else "This workflow cannot run now: it is a draft, disabled or archived."
    return render_template("workflows/_run_dialog.html", **_run_card_context(workflow, values, None, message))


def _in_dialog() -> bool:
    return bool(htmx) and htmx.target == "dialog-content"


def _render_run_form(workflow: Workflow, values: dict, errors: dict | None = None, message=None):
    """The Run card alone for htmx (the page stays where it is), the whole page otherwise."""
    if _in_dialog():
        return render_template("workflows/_run_dialog.html", **_run_card_context(workflow, values, errors, message))
    if htmx:
        return render_template("workflows/_run_card.html", **_run_card_context(workflow, values, errors, message))
    return _render_detail(workflow, values, errors, message)


@bp.post("/workflows/<key>/publish")
@requires(Capability.PUBLISH_WORKFLOW)
def publish(key: str):
    """Publish the newest saved version: it becomes the one that runs."""
    workflow = get_workflow_or_404(db.session, key, current_user)
    version = authoring.publish(db.session, workflow, current_user)
    db.session.commit()
    flash(f"{version.label} is live.", "success")
    return redirect(url_for("workflows.detail", key=workflow.key), code=303)


@bp.post("/workflows/<key>/enable")
@requires(Capability.PUBLISH_WORKFLOW)
def enable(key: str):
    """Let the workflow take new runs again."""
    return _set_enabled(key, True)


@bp.post("/workflows/<key>/disable")
@requires(Capability.PUBLISH_WORKFLOW)
def disable(key: str):
    """Stop the workflow taking new runs; runs in progress go on."""
    return _set_enabled(key, False)


def _set_enabled(key: str, enabled: bool):
    workflow = get_workflow_or_404(db.session, key, current_user)
    authoring.set_enabled(db.session, workflow, current_user, enabled)
    db.session.commit()
    flash("Enabled: the workflow takes new runs." if enabled
          else "Disabled: the workflow takes no new runs; runs in progress go on.", "success")
    return redirect(url_for("workflows.detail", key=workflow.key), code=303)


@bp.post("/workflows/<key>/archive")
@requires(Capability.AUTHOR_WORKFLOW)
def archive(key: str):
    """Archive the workflow: hidden from the lists and never run again; its runs and logs stay."""
    workflow = get_workflow_or_404(db.session, key, current_user)
    authoring.archive(db.session, workflow, current_user)
    db.session.commit()
    flash(f"{workflow.name} is archived. Its runs and logs stay; find it under Archived.", "success")
    return redirect(url_for("workflows.index", state=workflow_queries.ListState.ARCHIVED.value), code=303)


@bp.get("/workflows/<key>/clone")
@requires(Capability.AUTHOR_WORKFLOW)
def clone_form(key: str):
    """Ask for the copy's name before cloning."""
    workflow = get_workflow_or_404(db.session, key, current_user)
    return render_template("workflows/clone.html", workflow=workflow, name=f"Copy of {workflow.name}"[:50],
                           errors={})


@bp.post("/workflows/<key>/clone")
@requires(Capability.AUTHOR_WORKFLOW)
def clone(key: str):
    """Copy the workflow as a new draft with the name given; a bad name is shown at its field, as typed."""
    workflow = get_workflow_or_404(db.session, key, current_user)
    name = request.form.get("name", "")
    try:
        copy = authoring.clone(db.session, workflow, current_user, name)
    except Invalid as exc:
        db.session.rollback()
        return render_template("workflows/clone.html", workflow=workflow, name=name, errors=exc.fields), exc.status
    db.session.commit()
    flash(f"Cloned as the draft {copy.name}; only admins see it until it is published.", "success")
    return redirect(url_for("workflows.detail", key=copy.key), code=303)


@bp.get("/workflows/<key>/export")
@requires(Capability.EXPORT_DATA)
def export(key: str):
    """Download the workflow's definition (its newest version) with its settings, as a JSON file."""
    workflow = get_workflow_or_404(db.session, key, current_user)
    body = json.dumps(authoring.export_document(workflow), indent=2, ensure_ascii=False) + "\n"
    return Response(body, mimetype="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{workflow.key}.json"'})
