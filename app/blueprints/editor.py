"""The workflow editor: one page per workflow with its sections (configuration, restrictions, settings, parameters,
steps, review, JSON), a list of sections and steps at its side and a summary; and the New workflow form.

Every change goes to the working copy (or, for settings and restrictions, to the workflow at once) through
app.services.workflows; with htmx a change answers the section it changed plus the side list and the summary
(out of band), without htmx the page again.
"""
from flask import Blueprint, abort, make_response, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app.engine.diff import diff_definitions
from app.engine.limits import LABELS as LIMIT_LABELS
from app.engine.limits import versioned_part
from app.extensions import db, htmx
from app.models import Workflow
from app.security import Capability, get_workflow_or_404, requires
from app.security.policy import may_edit_definition, may_edit_settings, may_open_editor
from app.services.errors import Conflict, Invalid
from app.services.workflows import create_draft, publish, save_version, update_restrictions, update_settings
from app.services.workflows import editing
from app.vocabulary import KINDS, ROLES, TRIGGERS
from app.web.errors import is_panel_request

bp = Blueprint("editor", __name__)


def _editable(key: str) -> Workflow:
    """The workflow, for someone who may open its editor: 404 when they may not see it, 403 when they may see it
    but not change any of it."""
    workflow = get_workflow_or_404(db.session, key, current_user)
    if not may_open_editor(current_user, workflow):
        abort(403, description="Your role does not edit this workflow.")
    return workflow


def _definition_editable(key: str) -> Workflow:
    workflow = _editable(key)
    if not may_edit_definition(current_user, workflow):
        abort(403, description="Only administrators change this part of a workflow; you may change its settings.")
    return workflow


def _section() -> str:
    section = request.values.get("section", "configuration")
    return section if section in editing.SECTIONS else "configuration"


def _render(workflow: Workflow, section: str, *, state=None, status: int = 200, step: str | None = None,
            form_values: dict | None = None, form_errors: dict | None = None, notice: str | None = None,
            **extra):
    """The editor at `section`: the whole page, or for htmx the section with the side list and summary."""
    state = state or editing.editor_state(db.session, workflow)
    if step is not None and state.step(step) is None and form_values is None:
        step = None
    context = {
        "workflow": workflow,
        "state": state,
        "section": section,
        "step_key": step,
        "form_values": form_values,
        "form_errors": form_errors or {},
        "notice": notice,
        "can_edit_definition": may_edit_definition(current_user, workflow) and not workflow.is_archived,
        "can_edit_settings": may_edit_settings(current_user, workflow) and not workflow.is_archived,
        "key_locked": not workflow.is_draft,
        "step_labels": editing.STEP_LABELS,
        "kinds": KINDS,
        "triggers": TRIGGERS,
        "roles": ROLES,
        "limit_labels": LIMIT_LABELS,
        "http_methods": [(m, m) for m in editing.HTTP_METHODS],
        "step_values": editing.step_form_values,
        "param_values": editing.param_form_values,
        "link_targets": editing.link_targets,
        **extra,
    }
    if section == "review":
        context.update(_review_context(workflow, state))
    place = url_for("editor.edit", key=workflow.key, section=section, **({"step": step} if step else {}))
    if is_panel_request():
        response = make_response(render_template("editor/_update.html", **context), status)
        if request.method == "POST":
            response.headers["HX-Replace-Url"] = place
        return response
    if request.method == "POST" and status < 400:
        return redirect(place, code=303)
    return render_template("editor/edit.html", **context), status


def _review_context(workflow: Workflow, state) -> dict:
    live, saved, working = state.live, state.latest, versioned_part(state.definition)
    live_diff = diff_definitions(versioned_part(live.definition) if live else None, working,
                                 live.label if live else "nothing published", "working copy")
    summary = diff_definitions(versioned_part(saved.definition), working).summary if saved else "created"
    return {"live_diff": live_diff, "suggested_summary": summary}


def _write(workflow: Workflow, document: dict, section: str, notice: str, *, step: str | None = None,
           written_step: str | None = None, typed: dict | None = None, **extra):
    """Write `document` as the working copy and show `section` (at `written_step`). When the working copy changed
    since the form was shown, nothing is written: the section comes back as it is now, with what was typed."""
    try:
        state = editing.write_working_copy(db.session, workflow, current_user, document,
                                           seen=request.form.get("revision"))
    except Conflict as exc:
        db.session.rollback()
        again = " What you typed is still in the form: apply it again to put it over the newer copy." if typed else ""
        return _render(workflow, section, status=409, step=step, form_values=typed, refusal=exc.message + again,
                       **extra)
    db.session.commit()
    return _render(workflow, section, state=state, step=written_step or step, notice=notice, **extra)


@bp.get("/workflows/<key>/edit")
@login_required
def edit(key: str):
    """The editor at the section `?section=` names (and, in Steps, the step `?step=` names)."""
    workflow = _editable(key)
    return _render(workflow, _section(), step=request.args.get("step") or None)


@bp.post("/workflows/<key>/edit/configuration")
@login_required
def configuration(key: str):
    """Apply the Configuration section (name, key while a draft, description, kind, trigger) to the working copy."""
    workflow = _definition_editable(key)
    try:
        document = editing.apply_configuration(editing.working_copy(workflow), request.form,
                                               key_locked=not workflow.is_draft)
    except Invalid as exc:
        return _render(workflow, "configuration", status=422, form_values=request.form.to_dict(),
                       form_errors=exc.fields)
    return _write(workflow, document, "configuration", "Configuration applied to the working copy.",
                  typed=request.form.to_dict())


@bp.post("/workflows/<key>/edit/restrictions")
@login_required
def restrictions(key: str):
    """Set which roles may see and run the workflow (at once, not with the next save)."""
    workflow = _definition_editable(key)
    try:
        update_restrictions(db.session, workflow, current_user, editing.parse_restrictions(request.form))
    except Invalid as exc:
        db.session.rollback()
        return _render(workflow, "restrictions", status=422, form_values=_restriction_values(),
                       form_errors=exc.fields)
    db.session.commit()
    return _render(workflow, "restrictions", notice="Restrictions saved: they apply now.")


def _restriction_values() -> dict:
    return {"audience": request.form.get("audience", "every"), "roles": request.form.getlist("roles")}


@bp.post("/workflows/<key>/edit/settings")
@login_required
def settings(key: str):
    """Change the job settings and safety limits (at once, not with the next save)."""
    workflow = _editable(key)
    if not may_edit_settings(current_user, workflow):
        abort(403)
    try:
        update_settings(db.session, workflow, current_user, editing.parse_settings(request.form))
    except Invalid as exc:
        db.session.rollback()
        return _render(workflow, "settings", status=422, form_values=request.form.to_dict(), form_errors=exc.fields)
    db.session.commit()
    return _render(workflow, "settings", notice="Settings saved: they apply to the next runs.")


@bp.post("/workflows/<key>/edit/params")
@login_required
def add_param(key: str):
    """Add a parameter at the end of the list."""
    workflow = _definition_editable(key)
    document, index = editing.add_param(editing.working_copy(workflow))
    return _write(workflow, document, "parameters", f"Parameter {index + 1} added; give it a name and a type.")


@bp.post("/workflows/<key>/edit/params/<int:index>")
@login_required
def param(key: str, index: int):
    """Apply one parameter's form."""
    workflow = _definition_editable(key)
    try:
        document = editing.apply_param(editing.working_copy(workflow), index, request.form)
    except Invalid as exc:
        return _render(workflow, "parameters", status=422,
                       form_values={index: request.form.to_dict()}, form_errors={index: exc.fields})
    return _write(workflow, document, "parameters", f"Parameter {index + 1} applied to the working copy.",
                  typed={index: request.form.to_dict()})


@bp.post("/workflows/<key>/edit/params/<int:index>/form")
@login_required
def param_form(key: str, index: int):
    """The parameter's form again as typed, after its type changed (each type has its own fields); writes
    nothing."""
    workflow = _definition_editable(key)
    state = editing.editor_state(db.session, workflow)
    if not 0 <= index < len(state.params):
        abort(404)
    return _render(workflow, "parameters", state=state, form_values={index: request.form.to_dict()})


@bp.post("/workflows/<key>/edit/params/<int:index>/move")
@login_required
def move_param(key: str, index: int):
    """Move a parameter up or down the list."""
    workflow = _definition_editable(key)
    direction = "up" if request.form.get("direction") == "up" else "down"
    document = editing.move_param(editing.working_copy(workflow), index, direction)
    return _write(workflow, document, "parameters", f"Parameter moved {direction}.")


@bp.post("/workflows/<key>/edit/params/<int:index>/remove")
@login_required
def remove_param(key: str, index: int):
    """Remove a parameter."""
    workflow = _definition_editable(key)
    document = editing.remove_param(editing.working_copy(workflow), index)
    return _write(workflow, document, "parameters", "Parameter removed.")


@bp.post("/workflows/<key>/edit/steps")
@login_required
def add_step(key: str):
    """Add a step of the type picked, at the end, and open its form."""
    workflow = _definition_editable(key)
    try:
        document, step_key = editing.add_step(editing.working_copy(workflow), request.form.get("type", ""))
    except Invalid as exc:
        return _render(workflow, "steps", status=422, form_errors=exc.fields)
    return _write(workflow, document, "steps", "Step added at the end; fill in its form.", written_step=step_key)


@bp.post("/workflows/<key>/edit/steps/<step>")
@login_required
def step(key: str, step: str):
    """Apply one step's form (a new key is followed by every link to the step)."""
    workflow = _definition_editable(key)
    values = {**request.form.to_dict(), "roles": request.form.getlist("roles")}  # what was typed, shown again
    try:
        document, new_key = editing.apply_step(editing.working_copy(workflow), step, request.form)
    except Invalid as exc:
        return _render(workflow, "steps", status=422, step=step, form_values=values, form_errors=exc.fields)
    return _write(workflow, document, "steps", "Step applied to the working copy.", step=step, written_step=new_key,
                  typed=values)


@bp.post("/workflows/<key>/edit/steps/<step>/check")
@login_required
def check_step(key: str, step: str):
    """What is wrong with the field being typed in a step's form (its message, or an empty one); writes nothing."""
    workflow = _definition_editable(key)
    field = (htmx.trigger_name if htmx else None) or request.form.get("_field", "")
    message = editing.check_step_field(editing.working_copy(workflow), step, request.form, field)
    return render_template("editor/_message.html", id=f"msg-step-{field}", message=message)


@bp.post("/workflows/<key>/edit/steps/<step>/move")
@login_required
def move_step(key: str, step: str):
    """Move a step one place up or down."""
    workflow = _definition_editable(key)
    direction = "up" if request.form.get("direction") == "up" else "down"
    document = editing.move_step(editing.working_copy(workflow), step, direction)
    return _write(workflow, document, "steps", f"Step moved {direction}.")


@bp.post("/workflows/<key>/edit/steps/<step>/remove")
@login_required
def remove_step(key: str, step: str):
    """Remove a step (asked to confirm first on the page); links to it are dropped."""
    workflow = _definition_editable(key)
    document = editing.remove_step(editing.working_copy(workflow), step)
    return _write(workflow, document, "steps", f"Step '{step}' removed.")


@bp.post("/workflows/<key>/edit/json")
@login_required
def json_view(key: str):
    """Apply the whole working copy from the JSON view, when it is valid."""
    workflow = _definition_editable(key)
    text = request.form.get("document", "")
    state = editing.editor_state(db.session, workflow)
    try:
        document = editing.apply_document(state.definition, editing.parse_document(text),
                                          key_locked=not workflow.is_draft, max_nodes=state.max_nodes)
    except Invalid as exc:
        return _render(workflow, "json", state=state, status=422, form_values={"document": text},
                       form_errors=exc.fields)
    return _write(workflow, document, "json", "The JSON was applied to the working copy.", typed={"document": text})


@bp.post("/workflows/<key>/edit/save")
@login_required
def save(key: str):
    """Save the working copy as a new version, with the change summary given."""
    workflow = _definition_editable(key)
    summary = request.form.get("summary", "").strip() or None
    try:
        version = save_version(db.session, workflow, current_user, summary=summary)
    except (Invalid, Conflict) as exc:
        db.session.rollback()
        return _render(workflow, "review", status=exc.status, save_error=exc.message,
                       save_fields=exc.fields, form_values={"summary": summary or ""})
    db.session.commit()
    return _moved_or(workflow, key, "review", f"Saved as {version.label}.")


@bp.post("/workflows/<key>/edit/publish")
@login_required
def publish_latest(key: str):
    """Publish the latest saved version: it becomes the one that runs."""
    workflow = _definition_editable(key)
    try:
        version = publish(db.session, workflow, current_user)
    except (Invalid, Conflict) as exc:
        db.session.rollback()
        return _render(workflow, "review", status=exc.status, publish_error=exc.message)
    db.session.commit()
    return _moved_or(workflow, key, "review", f"Published {version.label}: it is the version that runs now.")


def _moved_or(workflow: Workflow, key: str, section: str, notice: str):
    """The section again, or, when a save gave the workflow a new key, the editor at its new address."""
    if workflow.key == key:
        return _render(workflow, section, notice=notice)
    target = url_for("editor.edit", key=workflow.key, section=section)
    if htmx:
        response = make_response("", 200)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target, code=303)


@bp.get("/workflows/new")
@requires(Capability.AUTHOR_WORKFLOW)
def new():
    """The New workflow form: a name (the key follows it), a description, the kind and the trigger."""
    return render_template("editor/new.html", values={}, errors={}, kinds=KINDS, triggers=TRIGGERS)


@bp.post("/workflows/new")
@requires(Capability.AUTHOR_WORKFLOW)
def create():
    """Create the workflow as a draft with one log step to start from, and open its editor."""
    document = editing.new_definition(request.form)
    try:
        workflow = create_draft(db.session, current_user, document)
    except (Invalid, Conflict) as exc:
        db.session.rollback()
        values = request.form.to_dict()
        values.setdefault("key", document["key"])
        errors = dict(exc.fields) or {"form": exc.message}
        return render_template("editor/new.html", values=values, errors=errors, kinds=KINDS,
                               triggers=TRIGGERS), exc.status
    db.session.commit()
    return redirect(url_for("editor.edit", key=workflow.key), code=303)
