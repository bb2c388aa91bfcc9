"""A workflow's versions (the list, a version's diff against the one before it or the live one, restoring one)
and its audit log."""
import json

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from app.extensions import db
from app.queries import workflows as workflow_queries
from app.security import Capability, get_workflow_or_404, requires
from app.services import workflows as authoring
from app.services.errors import Conflict
from app.web.inputs import id_arg

bp = Blueprint("versions", __name__)
AGAINST = ("previous", "live")


@bp.app_template_filter("field_value")
def field_value(value) -> str:
    """A changed field's value as people read it: text as it is, anything else as compact JSON; None as a dash."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


@bp.get("/workflows/<key>/versions")
@requires(Capability.LIST_WORKFLOWS)
def index(key: str):
    """Every version of a workflow, newest first: number, author, time, summary, which one is live."""
    workflow = get_workflow_or_404(db.session, key, current_user)
    versions = workflow_queries.versions_of(db.session, workflow)
    return render_template("versions/index.html", workflow=workflow, versions=versions, tab="versions",
                           refusal=authoring.restore_refusal(db.session, workflow))


@bp.get("/workflows/<key>/versions/<int:number>")
@requires(Capability.LIST_WORKFLOWS)
def diff(key: str, number: int):
    """What a version changed: its diff against the version before it, or (`?against=live`) the live one."""
    workflow = get_workflow_or_404(db.session, key, current_user)
    against = request.args.get("against", "previous")
    if against not in AGAINST:
        against = "previous"
    compared = workflow_queries.compare_versions(db.session, workflow, number, against)
    if compared is None:
        abort(404)
    return render_template("versions/diff.html", workflow=workflow, compared=compared, against=against,
                           tab="versions")


@bp.get("/workflows/<key>/versions/<int:number>/restore")
@requires(Capability.AUTHOR_WORKFLOW)
def restore_form(key: str, number: int):
    """Before restoring a version: what it does, and the button; or why it is refused now (runs in flight)."""
    workflow = get_workflow_or_404(db.session, key, current_user)
    version = workflow_queries.version_of(db.session, workflow, number)
    if version is None:
        abort(404)
    refusal = authoring.restore_refusal(db.session, workflow)
    return render_template("versions/restore.html", workflow=workflow, version=version, refusal=refusal,
                           tab="versions"), 409 if refusal else 200


@bp.post("/workflows/<key>/versions/<int:number>/restore")
@requires(Capability.AUTHOR_WORKFLOW)
def restore(key: str, number: int):
    """Restore a version as a new one (live at once if the workflow is published); refused while runs are active."""
    workflow = get_workflow_or_404(db.session, key, current_user)
    try:
        version = authoring.restore(db.session, workflow, current_user, number)
    except Conflict as exc:
        db.session.rollback()
        source = workflow_queries.version_of(db.session, workflow, number)
        return render_template("versions/restore.html", workflow=workflow, version=source, refusal=exc.message,
                               tab="versions"), exc.status
    db.session.commit()
    live = " and is live" if workflow.published_version_id == version.id else ""
    flash(f"Restored v{number} as {version.label}; it is the working copy{live}.", "success")
    return redirect(url_for("versions.index", key=workflow.key), code=303)


@bp.get("/workflows/<key>/audit")
@requires(Capability.LIST_WORKFLOWS)
def audit(key: str):
    """Who changed what on the workflow and when (field by field, old → new), newest first, a page at a time."""
    workflow = get_workflow_or_404(db.session, key, current_user)
    page = workflow_queries.audit_page(db.session, workflow, id_arg("before"))
    return render_template("versions/audit.html", workflow=workflow, page=page, tab="audit",
                           first_page=request.args.get("before") is None)
