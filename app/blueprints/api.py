"""JSON API for scripts, authenticated with bearer tokens."""
from functools import wraps

import sqlalchemy as sa
from flask import Blueprint, current_app, g, jsonify, request, url_for
from sqlalchemy.orm import selectinload

from app.blueprints.api_openapi import openapi_document
from app.extensions import db, limiter
from app.models import AuditEvent, Run, Workflow, WorkflowVersion
from app.queries import workflows as workflow_queries
from app.queries.filters import RunFilter
from app.queries.runs import runs_page
from app.security import Capability, can, visible_workflow_ids, visible_workflows, workflow_visible
from app.services import workflows as authoring
from app.services.errors import Conflict, Invalid, NotFound, PermissionDenied
from app.services.runs import CancelOutcome, cancel_run, replay_run, retry_run, retry_step, start_run
from app.services.users import user_for_token
from app.vocabulary import Trigger
from app.web.errors import json_error
from app.web.inputs import BadInput, id_arg, json_body

bp = Blueprint("api", __name__, url_prefix="/api/v1")
# Failed tokens per client address; past the limit every API call from there answers 429 for a while.
limiter.limit(lambda: current_app.config["API_AUTH_LIMIT"], deduct_when=lambda response: response.status_code == 401)(bp)
RUN_REQUEST_FIELDS = {"params", "record"}
REPLAY_REQUEST_FIELDS = {"params", "record", "at"}
DEFINITION_REQUEST_FIELDS = {"definition", "summary"}
BARE_DEFINITION_FIELDS = {"key", "steps"}  # a body with either (and no `definition`) is the definition itself
RUN_FILTER_ARGS = {"workflow", "status", "trigger", "kind", "queue", "version", "key", "range", "since", "until",
                   "before", "limit"}


def token_required(view):
    """Authenticate the request by its `Authorization: Bearer <token>` header, or answer 401."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return json_error(401, "Send an API token as 'Authorization: Bearer <token>'.")
        user = user_for_token(db.session, token.strip())
        if user is None:
            return json_error(401, "The API token is invalid or revoked.")
        g.api_user = user
        return view(*args, **kwargs)

    return wrapper


def _visible_workflow(key: str) -> Workflow:
    """The workflow with `key`, or NotFound when it does not exist or the token's user may not see it."""
    workflow = db.session.scalar(sa.select(Workflow).where(Workflow.key == key))
    if workflow is None or not workflow_visible(workflow, g.api_user):
        raise NotFound(f"No workflow '{key}'.")
    return workflow


def _run_json(run: Run, with_steps: bool = False) -> dict:
    data = {
        "id": run.id,
        "workflow": run.workflow_key,
        "workflow_name": run.workflow_name,
        "version": run.version.number,
        "status": run.status,
        "attempt": run.attempt,
        "trigger": run.trigger,
        "params": run.params,
        "record": run.context,
        "progress": {"done": run.progress_done, "total": run.progress_total, "percent": run.percent},
        "queued_at": _iso(run.queued_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "duration_seconds": run.duration_seconds,
        "error": {"code": run.error_code, "message": run.error_message} if run.error_code else None,
        "url": url_for("api.get_run", run_id=run.id, _external=True),
        "html_url": url_for("runs.detail", run_id=run.id, _external=True),
    }
    if with_steps:
        data["steps"] = [
            {
                "key": s.step_key,
                "name": s.step_name,
                "type": s.step_type,
                "status": s.status,
                "started_at": _iso(s.started_at),
                "finished_at": _iso(s.finished_at),
                "error": {"code": s.error_code, "message": s.error_message} if s.error_code else None,
                "approval": _approval_json(s),
            }
            for s in run.steps
        ]
    return data


def _approval_json(step) -> dict | None:
    """An approval step's question and, once decided, who decided, when and why (None for other steps)."""
    if step.step_type != "approval" or step.approval_roles is None:
        return None
    return {"message": step.approval_message, "roles": step.approver_roles, "due_at": _iso(step.approval_due_at),
            "decision": step.decision, "decided_by": step.decided_by, "decided_at": _iso(step.decided_at),
            "comment": step.decision_comment}


def _iso(value):
    return value.isoformat() + "Z" if value else None


@bp.get("/workflows")
@token_required
def list_workflows():
    """The workflows the token's user may see."""
    if not can(g.api_user, Capability.LIST_WORKFLOWS):
        raise PermissionDenied("Your role cannot list workflows.")
    live = selectinload(Workflow.published_version).load_only(WorkflowVersion.number)  # not the definitions
    rows = visible_workflows(db.session, g.api_user, Workflow.archived_at.is_(None), options=(live,))
    return jsonify(
        {
            "workflows": [
                {"key": w.key, "name": w.name, "kind": w.kind, "state": w.state, "enabled": w.enabled,
                 "queue": w.queue, "version": w.published_version.number if w.published_version else None}
                for w in rows
            ]
        }
    )


def _workflow_json(workflow: Workflow) -> dict:
    """A workflow as the authoring calls answer it: what it is, which version is live, its settings."""
    latest = workflow.latest_version
    return {
        "key": workflow.key, "name": workflow.name, "description": workflow.description, "kind": workflow.kind,
        "trigger": workflow.trigger, "state": workflow.state, "enabled": workflow.enabled,
        "archived": workflow.is_archived,
        "version": workflow.published_version.number if workflow.published_version else None,
        "latest_version": latest.number if latest else None,
        "has_unpublished_changes": workflow.has_unpublished_changes,
        "allowed_roles": workflow.allowed_roles,
        "settings": {name: getattr(workflow, name) for name in authoring.SETTING_FIELDS},
        "url": url_for("api.list_versions", key=workflow.key, _external=True),
        "html_url": url_for("workflows.detail", key=workflow.key, _external=True),
    }


def _version_json(version: WorkflowVersion, workflow: Workflow) -> dict:
    return {"number": version.number, "summary": version.summary,
            "author": version.author.email if version.author else None, "created_at": _iso(version.created_at),
            "live": version.id == workflow.published_version_id, "restored_from": version.restored_from,
            "settings": version.settings}


def _definition_request() -> tuple[dict, str | None]:
    """The body of a create or save: `{"definition": {...}, "summary": "..."}`, or the definition document itself
    (`{"key": ..., "steps": [...]}`) with the summary, if any, in the `summary` query parameter."""
    body = json_body()
    if not isinstance(body, dict):
        raise Invalid("The body must be a JSON object like {\"definition\": {...}, \"summary\": \"...\"}.",
                      fields={"body": "must be a JSON object"})
    if "definition" not in body and BARE_DEFINITION_FIELDS & set(body):
        return body, request.args.get("summary")
    unknown = sorted(set(body) - DEFINITION_REQUEST_FIELDS)
    if unknown:
        raise Invalid("The body has fields a definition request does not take.",
                      fields={name: "is not a field of a definition request; use definition and summary"
                              for name in unknown})
    if "definition" not in body:
        raise Invalid("The body has no definition.", fields={"definition": "is required"})
    return body["definition"], body.get("summary")


def _require(capability: Capability, message: str) -> None:
    if not can(g.api_user, capability):
        raise PermissionDenied(message)


@bp.post("/workflows")
@token_required
def create_workflow():
    """Create a workflow as a draft from `{"definition": {...}, "summary": "..."}` (admins); 201 with the workflow,
    422 naming each bad field of the definition."""
    _require(Capability.AUTHOR_WORKFLOW, "Only administrators create workflows.")
    document, summary = _definition_request()
    workflow = authoring.create_draft(db.session, g.api_user, document, summary)
    db.session.commit()
    response = jsonify(_workflow_json(workflow))
    response.status_code = 201
    response.headers["Location"] = url_for("api.list_versions", key=workflow.key, _external=True)
    return response


@bp.get("/workflows/<key>")
@token_required
def get_workflow(key: str):
    """One workflow the token's user may see (404 otherwise; drafts are for admins)."""
    return jsonify(_workflow_json(_visible_workflow(key)))


@bp.put("/workflows/<key>/definition")
@token_required
def save_definition(key: str):
    """Save `{"definition": {...}, "summary": "..."}` as the workflow's next version (admins); 200 with the version,
    422 naming each bad field, 409 when nothing changed."""
    workflow = _visible_workflow(key)
    _require(Capability.AUTHOR_WORKFLOW, "Only administrators change workflow definitions.")
    document, summary = _definition_request()
    version = authoring.save_version(db.session, workflow, g.api_user, summary, document)
    db.session.commit()
    return jsonify(_version_json(version, workflow))


@bp.post("/workflows/<key>/publish")
@token_required
def publish_workflow(key: str):
    """Publish the newest saved version (admins); 409 when it is live already."""
    workflow = _visible_workflow(key)
    _require(Capability.PUBLISH_WORKFLOW, "Only administrators publish workflows.")
    authoring.publish(db.session, workflow, g.api_user)
    db.session.commit()
    return jsonify(_workflow_json(workflow))


@bp.post("/workflows/<key>/enable")
@token_required
def enable_workflow(key: str):
    """Let the workflow take new runs again (admins)."""
    return _set_enabled(key, True)


@bp.post("/workflows/<key>/disable")
@token_required
def disable_workflow(key: str):
    """Stop the workflow taking new runs (admins); runs in progress go on."""
    return _set_enabled(key, False)


def _set_enabled(key: str, enabled: bool):
    workflow = _visible_workflow(key)
    _require(Capability.PUBLISH_WORKFLOW, "Only administrators enable and disable workflows.")
    authoring.set_enabled(db.session, workflow, g.api_user, enabled)
    db.session.commit()
    return jsonify(_workflow_json(workflow))


@bp.put("/workflows/<key>/settings")
@token_required
def update_workflow_settings(key: str):
    """Change job settings and safety limits with `{"queue": ..., "max_runtime_seconds": ...}` (any of them;
    managers and admins); 200 with the workflow and what changed, 422 naming each bad field."""
    workflow = _visible_workflow(key)
    _require(Capability.UPDATE_WORKFLOW, "Your role cannot change workflow settings.")
    body = json_body()
    if not isinstance(body, dict):
        raise Invalid("The body must be a JSON object like {\"queue\": \"default\"}.",
                      fields={"body": "must be a JSON object"})
    changes = authoring.update_settings(db.session, workflow, g.api_user, body)
    db.session.commit()
    return jsonify({"workflow": _workflow_json(workflow), "changes": changes})


@bp.get("/workflows/<key>/versions")
@token_required
def list_versions(key: str):
    """The workflow's versions, newest first: number, author, time, summary and which one is live."""
    workflow = _visible_workflow(key)
    versions = workflow_queries.versions_of(db.session, workflow)
    return jsonify({"workflow": _workflow_json(workflow),
                    "versions": [_version_json(v, workflow) for v in versions]})


@bp.get("/workflows/<key>/versions/<int:number>")
@token_required
def get_version(key: str, number: int):
    """One version with its definition, and what it changed since the version before it."""
    workflow = _visible_workflow(key)
    compared = workflow_queries.compare_versions(db.session, workflow, number)
    if compared is None:
        raise NotFound(f"Workflow '{key}' has no version {number}.")
    return jsonify({**_version_json(compared.version, workflow), "definition": compared.version.definition,
                    "changes": compared.diff.audit_changes()})


@bp.post("/workflows/<key>/versions/<int:number>/restore")
@token_required
def restore_version(key: str, number: int):
    """Restore version `number` as a new version, live at once if the workflow is published (admins); 409 while
    any run of the workflow is active."""
    workflow = _visible_workflow(key)
    _require(Capability.AUTHOR_WORKFLOW, "Only administrators restore versions.")
    version = authoring.restore(db.session, workflow, g.api_user, number)
    db.session.commit()
    return jsonify(_version_json(version, workflow))


@bp.get("/workflows/<key>/audit")
@token_required
def workflow_audit(key: str):
    """Who changed what on the workflow and when, newest first, a page at a time (`next`)."""
    workflow = _visible_workflow(key)
    unknown = sorted(set(request.args) - {"before"})
    if unknown:
        raise BadInput("The query has parameters the audit log does not take.",
                       {name: "is not a parameter of the audit log; use before" for name in unknown})
    page = workflow_queries.audit_page(db.session, workflow, id_arg("before"))
    following = None
    if page.older:
        following = url_for("api.workflow_audit", key=workflow.key, before=page.older, _external=True)
    return jsonify({"events": [_event_json(e) for e in page.events], "next": following})


def _event_json(event: AuditEvent) -> dict:
    return {"id": event.id, "at": _iso(event.created_at), "actor": event.actor, "action": event.action,
            "changes": event.changes}


@bp.post("/workflows/<key>/runs")
@token_required
def create_run(key: str):
    """Start a run with `{"params": {...}, "record": {"key": ...}}`; answers 202 with the run's id, status and URL."""
    workflow = _visible_workflow(key)
    body = json_body(default={})
    if not isinstance(body, dict):
        raise Invalid("The body must be a JSON object like {\"params\": {...}}.",
                      fields={"body": "must be a JSON object"})
    unknown = sorted(set(body) - RUN_REQUEST_FIELDS)
    if unknown:
        raise Invalid("The body has fields a run request does not take.",
                      fields={name: "is not a field of a run request" for name in unknown})
    run = start_run(db.session, workflow, g.api_user, body.get("params", {}), trigger=Trigger.API,
                    record=body.get("record"))
    run_id, status = run.id, run.status  # as written: read after the commit, they would cost a SELECT
    db.session.commit()
    return jsonify({"id": run_id, "status": status, "url": url_for("api.get_run", run_id=run_id, _external=True),
                    "html_url": url_for("runs.detail", run_id=run_id, _external=True)}), 202


@bp.get("/runs")
@token_required
def list_runs():
    """Runs the token's user may see, newest first, filtered like the Runs page; `next` pages to older ones."""
    unknown = sorted(set(request.args) - RUN_FILTER_ARGS)
    if unknown:
        raise BadInput("The query has parameters the runs list does not take.",
                       {name: "is not a filter of the runs list" for name in unknown})
    f = RunFilter.from_args(request.args)
    ids = visible_workflow_ids(db.session, g.api_user)
    page = runs_page(db.session, f, ids)
    following = None
    if page.older:
        following = url_for("api.list_runs", **f.to_args(before=page.older).to_dict(flat=False), _external=True)
    return jsonify({"runs": [_run_json(run) for run in page.runs], "next": following})


@bp.get("/runs/<int:run_id>")
@token_required
def get_run(run_id: int):
    """A run's status, progress, timing and steps."""
    return jsonify(_run_json(_visible_run(run_id), with_steps=True))


@bp.post("/runs/<int:run_id>/replay")
@token_required
def replay_run_api(run_id: int):
    """Replay a completed or failed run with `{"params": {...}, "record": {...}, "at": "<ISO>"}`, all optional
    (params are edits over the source's values); answers 202 with the new run's id, `replay_of` and URL."""
    source = _visible_run(run_id)
    body = json_body(default={})
    if not isinstance(body, dict):
        raise Invalid("The body must be a JSON object like {\"params\": {...}}.",
                      fields={"body": "must be a JSON object"})
    unknown = sorted(set(body) - REPLAY_REQUEST_FIELDS)
    if unknown:
        raise Invalid("The body has fields a replay request does not take.",
                      fields={name: "is not a field of a replay request" for name in unknown})
    run = replay_run(db.session, source, g.api_user, params=body.get("params"), record=body.get("record"),
                     at=body.get("at"), trigger=Trigger.API)
    db.session.commit()
    return jsonify({"id": run.id, "status": run.status, "replay_of": source.id,
                    "scheduled_for": _iso(run.not_before),
                    "url": url_for("api.get_run", run_id=run.id, _external=True),
                    "html_url": url_for("runs.detail", run_id=run.id, _external=True)}), 202


@bp.post("/runs/<int:run_id>/retry")
@token_required
def retry(run_id: int):
    """Queue the next attempt of a failed run (what the run page's Retry run does); 202 with the plan."""
    plan = retry_run(db.session, _visible_run(run_id), g.api_user)
    db.session.commit()
    return jsonify({"id": run_id, "attempt": plan.attempt, "status": "pending", "plan": plan.as_json(),
                    "url": url_for("api.get_run", run_id=run_id, _external=True),
                    "html_url": url_for("runs.detail", run_id=run_id, _external=True)}), 202


@bp.post("/runs/<int:run_id>/steps/<step_key>/retry")
@token_required
def retry_one_step(run_id: int, step_key: str):
    """Run the step a failed run stopped at again, with the same input, in the same attempt (the page's Retry
    step); 202."""
    step = retry_step(db.session, _visible_run(run_id), step_key, g.api_user)
    db.session.commit()
    return jsonify({"id": run_id, "status": "pending", "step": step.step_key, "retries": step.retries + 1,
                    "url": url_for("api.get_run", run_id=run_id, _external=True)}), 202


@bp.post("/runs/<int:run_id>/cancel")
@token_required
def cancel(run_id: int):
    """Cancel a run (what the run page's Cancel does); 409 when it had already finished."""
    result = cancel_run(db.session, _visible_run(run_id), g.api_user)
    db.session.commit()
    if result.outcome == CancelOutcome.FINISHED:
        raise Conflict(f"Run {run_id} has already finished ({result.status.label.lower()}); nothing to cancel.")
    return jsonify({"id": run_id, "outcome": result.outcome.value, "status": result.status.value}), 202


def _visible_run(run_id: int) -> Run:
    """The run, or NotFound when it does not exist or the token's user may not see its workflow."""
    run = db.session.get(Run, run_id)
    if run is None or not workflow_visible(run.workflow, g.api_user):
        raise NotFound(f"No run {run_id}.")
    return run


@bp.get("/openapi.json")
def openapi():
    """This API described in OpenAPI 3.1: every endpoint, body, answer and error."""
    return jsonify(openapi_document())


APPROVAL_REQUEST_FIELDS = {"decision", "comment"}


@bp.post("/runs/<int:run_id>/approval")
@token_required
def decide_approval(run_id: int):
    """Approve or reject the step a run waits on with `{"decision": "approve"|"reject", "comment": "..."}`: 202 when
    approved (the run is queued to go on), 200 when rejected (the run has ended), with the run's status."""
    from app.services.runs import Decision, decide

    run = db.session.get(Run, run_id)
    if run is None or not workflow_visible(run.workflow, g.api_user):
        raise NotFound(f"No run {run_id}.")
    body = json_body(default={})
    if not isinstance(body, dict):
        raise Invalid("The body must be a JSON object like {\"decision\": \"approve\"}.",
                      fields={"body": "must be a JSON object"})
    unknown = sorted(set(body) - APPROVAL_REQUEST_FIELDS)
    if unknown:
        raise Invalid("The body has fields an approval does not take.",
                      fields={name: "is not a field of an approval; use decision and comment" for name in unknown})
    result = decide(db.session, run, g.api_user, body.get("decision"), body.get("comment"))
    db.session.commit()
    db.session.expire_all()
    run = db.session.get(Run, run_id)
    return jsonify({"id": run.id, "status": run.status, "decision": result.decision.value, "step": result.step_key,
                    "url": url_for("api.get_run", run_id=run.id, _external=True),
                    "html_url": url_for("runs.detail", run_id=run.id, _external=True)}), (
        202 if result.decision is Decision.APPROVE else 200)
