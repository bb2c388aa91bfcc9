"""The JSON API described in OpenAPI 3.1, served at /api/v1/openapi.json.

tests/test_api_contract.py holds it to the code: every /api/v1 route is described here and every operation here is
a route, and schemathesis checks that the answers match. To add an endpoint, add its path to `_paths()` with
`_operation(...)`, naming the errors it can answer; 401 and 429 come with every operation that needs a token.
"""
from app.engine.states import RunStatus, StepStatus, Verdict
from app.engine.strictjson import MAX_DEPTH
from app.engine.limits import BOUNDS, NULLABLE
from app.vocabulary import KINDS, ROLES, TRIGGERS, WorkflowState
from app.web.inputs import MAX_ID

ERRORS = {
    400: "The body is malformed: not UTF-8, not JSON, or JSON holding NaN or Infinity, a number too large to "
         f"store, a lone surrogate, a NUL character, or nesting deeper than {MAX_DEPTH} levels. `fields` names "
         'where, as a path from the body such as `params.note` or `params.rows[2]["odd key"]`.',
    401: "No `Authorization: Bearer <token>` header, or the token is invalid or revoked.",
    403: "The user's role may not do this (a viewer starting a run).",
    404: "No such workflow or run, or one the user may not see (drafts, disabled workflows and workflows whose "
         "allowed roles leave the user out are for admins only).",
    409: "The request conflicts with where things stand: the workflow is a draft, disabled or archived (only admins "
         "see those), or the run is not in a status that allows this (retrying a run that did not fail, cancelling "
         "a finished one, replaying one that is still active or did not complete or fail, deciding on a run "
         "that no longer waits for approval); saving a definition identical to the newest version, publishing "
         "the version that is live already, restoring while any run of the workflow is pending, running or "
         "waiting. `error` says which.",
    413: "The request is larger than the server accepts (FLOWDESK_MAX_CONTENT_LENGTH, 1 MiB by default).",
    415: "The body is not sent as `Content-Type: application/json`.",
    422: "The body is well-formed JSON but not a valid request: not an object, a field a run does not take, "
         "or invalid parameters. `fields` names each, parameters by their name (`record`, `record.key` and `at` "
         "by theirs); a definition's fields by their path in the definition (`key`, `steps[0].with.url`), "
         "settings by their name.",
    429: "Too many requests with a failing token from this client; wait `Retry-After` seconds.",
}
TOKEN_ERRORS = (401, 429)


def openapi_document() -> dict:
    """The whole OpenAPI 3.1 document of /api/v1."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Flowdesk API",
            "version": "1",
            "description": "Start workflow runs and follow them. Authenticate with `Authorization: Bearer <token>` "
                           "(`flask --app wsgi users token EMAIL` prints one). Every error answers "
                           '`{"error": "...", "fields": {...}}`.',
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "An API token issued to a user; it acts with their role."}},
            "schemas": SCHEMAS,
        },
    }


def _paths() -> dict:
    return {
        "/workflows": {
            "get": _operation(
                "listWorkflows", "The workflows the token's user may see",
                {200: ("The workflows, by name", "WorkflowList")},
                errors=(403,),
            ),
            "post": _operation(
                "createWorkflow", "Create a workflow as a draft, with the definition as its version 1 (admins)",
                {201: ("The new draft; only admins see it until it is published", "Workflow")},
                errors=(400, 403, 409, 413, 415, 422),
                parameters=[_SUMMARY],
                body={"required": True, "description": "The definition and an optional change summary, or the "
                      "definition document itself (the summary then in `?summary=`). Its key must be one no workflow "
                      "has (422 on `key`).",
                      "content": {"application/json": {"schema": _DEFINITION_BODY}}},
            ),
        },
        "/workflows/{key}": {
            "get": _operation(
                "getWorkflow", "One workflow: which version is live, the newest saved one, its settings",
                {200: ("The workflow", "Workflow")},
                errors=(404,),
                parameters=[_KEY],
            ),
        },
        "/workflows/{key}/definition": {
            "put": _operation(
                "saveDefinition", "Save a definition as the workflow's next version (admins)",
                {200: ("The new version; the workflow's working copy is now this definition", "Version")},
                errors=(400, 403, 404, 409, 413, 415, 422),
                parameters=[_KEY, _SUMMARY],
                body={"required": True, "description": "The whole definition and an optional change summary (one "
                      "is generated from what changed when there is none), or the definition document itself (the "
                      "summary then in `?summary=`). A published workflow's key never changes.",
                      "content": {"application/json": {"schema": _DEFINITION_BODY}}},
            ),
        },
        "/workflows/{key}/publish": {
            "post": _operation(
                "publishWorkflow", "Publish the workflow's newest saved version (admins)",
                {200: ("The workflow, with that version live", "Workflow")},
                errors=(403, 404, 409),
                parameters=[_KEY],
            ),
        },
        "/workflows/{key}/enable": {
            "post": _operation(
                "enableWorkflow", "Let the workflow take new runs (admins)",
                {200: ("The workflow, enabled", "Workflow")},
                errors=(403, 404, 409),
                parameters=[_KEY],
            ),
        },
        "/workflows/{key}/disable": {
            "post": _operation(
                "disableWorkflow", "Stop the workflow taking new runs; runs in progress go on (admins)",
                {200: ("The workflow, disabled", "Workflow")},
                errors=(403, 404),
                parameters=[_KEY],
            ),
        },
        "/workflows/{key}/settings": {
            "put": _operation(
                "updateSettings", "Change job settings and safety limits, live at once (managers and admins)",
                {200: ("The workflow and what changed", "SettingsUpdated")},
                errors=(400, 403, 404, 409, 413, 415, 422),
                parameters=[_KEY],
                body={"required": True, "description": "The settings to change; those left out stay as they are.",
                      "content": {"application/json": {"schema": _ref("SettingsRequest")}}},
            ),
        },
        "/workflows/{key}/versions": {
            "get": _operation(
                "listVersions", "The workflow's versions, newest first",
                {200: ("The workflow and its versions", "VersionList")},
                errors=(404,),
                parameters=[_KEY],
            ),
        },
        "/workflows/{key}/versions/{number}": {
            "get": _operation(
                "getVersion", "One version with its definition and what it changed since the version before it",
                {200: ("The version", "VersionDetail")},
                errors=(404,),
                parameters=[_KEY, _NUMBER],
            ),
        },
        "/workflows/{key}/versions/{number}/restore": {
            "post": _operation(
                "restoreVersion", "Restore a version as a new version, live at once if the workflow is published "
                "(admins); refused while any run of the workflow is active",
                {200: ("The new version, copied from the one restored", "Version")},
                errors=(403, 404, 409),
                parameters=[_KEY, _NUMBER],
            ),
        },
        "/workflows/{key}/audit": {
            "get": _operation(
                "workflowAudit", "Who changed what on the workflow, and when, newest first",
                {200: ("A page of audit events and the URL of the next (older) page", "AuditList")},
                errors=(400, 404),
                parameters=[_KEY, {"name": "before", "in": "query", "required": False,
                                   "description": "Events with ids below this (the `next` URL sets it)",
                                   "schema": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": MAX_ID},
                                                        {"const": ""}]}}],
            ),
        },
        "/workflows/{key}/runs": {
            "post": _operation(
                "startRun", "Start a run of a workflow",
                {202: ("The run was added as pending and queued; follow it at `url`", "RunStarted")},
                errors=(400, 403, 404, 409, 413, 415, 422),
                parameters=[{"name": "key", "in": "path", "required": True, "description": "The workflow's key",
                             "schema": {"type": "string"}}],
                body={"required": False, "description": "The run's parameters; no body means no parameters.",
                      "content": {"application/json": {"schema": _ref("RunRequest")}}},
            ),
        },
        "/runs": {
            "get": _operation(
                "listRuns", "Runs the token's user may see, newest first, filtered as on the Runs page",
                {200: ("A page of runs and the URL of the next (older) page", "RunList")},
                errors=(400,),
                parameters=_RUN_FILTERS,
            ),
        },
        "/runs/{run_id}": {
            "get": _operation(
                "getRun", "A run's status, progress, timing, error and steps",
                {200: ("The run", "Run")},
                errors=(404,),
                parameters=[_RUN_ID],
            ),
        },
        "/runs/{run_id}/retry": {
            "post": _operation(
                "retryRun", "Retry a failed run: a new attempt that reuses its completed steps",
                {202: ("The next attempt was queued; `plan` says which steps are reused and which run", "RetryQueued")},
                errors=(403, 404, 409),
                parameters=[_RUN_ID],
            ),
        },
        "/runs/{run_id}/steps/{step_key}/retry": {
            "post": _operation(
                "retryStep", "Run the step a failed run stopped at again, with the same input, in the same attempt",
                {202: ("The step was queued to run again; the run goes on after it if it succeeds",
                       "StepRetryQueued")},
                errors=(403, 404, 409),
                parameters=[_RUN_ID, {"name": "step_key", "in": "path", "required": True,
                                      "description": "The failed step's key", "schema": {"type": "string"}}],
            ),
        },
        "/runs/{run_id}/cancel": {
            "post": _operation(
                "cancelRun", "Cancel a run: at once when pending or parked, after its current step when running",
                {202: ("The run was cancelled, or asked to stop after its current step", "CancelAnswer")},
                errors=(403, 404, 409),
                parameters=[_RUN_ID],
            ),
        },
        "/runs/{run_id}/replay": {
            "post": _operation(
                "replayRun", "Replay a completed or failed run as a new run on the current published version",
                {202: ("The replay was added as pending and queued (or scheduled for `at`); follow it at `url`",
                       "ReplayStarted")},
                errors=(400, 403, 404, 409, 413, 415, 422),
                parameters=[_RUN_ID],
                body={"required": False,
                      "description": "Edits; no body replays the run with its own params and context record, now.",
                      "content": {"application/json": {"schema": _ref("ReplayRequest")}}},
            ),
        },
        "/runs/{run_id}/approval": {
            "post": _operation(
                "decideApproval", "Approve or reject the approval step a run waits on",
                {200: ("Rejected: the run has ended as rejected", "ApprovalDecided"),
                 202: ("Approved: the run is queued to go on from the next step", "ApprovalDecided")},
                errors=(400, 403, 404, 409, 413, 415, 422),
                parameters=[_RUN_ID],
                body={"required": True, "description": "The decision and an optional comment. Only a user whose "
                      "role the step lists (and who holds APPROVE_STEP) may decide, and not on a run they started "
                      "unless the step allows it (403).",
                      "content": {"application/json": {"schema": _ref("ApprovalRequest")}}},
            ),
        },
        "/openapi.json": {
            "get": _operation(
                "getOpenApi", "This document", {200: ("The OpenAPI 3.1 document of this API", None)},
                errors=(), public=True,
            ),
        },
    }


_KEY = {"name": "key", "in": "path", "required": True, "description": "The workflow's key",
        "schema": {"type": "string"}}
_NUMBER = {"name": "number", "in": "path", "required": True, "description": "The version's number",
           "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ID}}
_SUMMARY = {"name": "summary", "in": "query", "required": False,
            "description": "What changed, when the body is the definition document itself (else it is ignored)",
            "schema": {"type": "string", "maxLength": 255}}
# A create or save takes {"definition": {...}, "summary": "..."}, or the definition document itself.
_DEFINITION_BODY = {"oneOf": [
    {"$ref": "#/components/schemas/DefinitionRequest"},
    {"type": "object", "required": ["key", "steps"], "not": {"required": ["definition"]},
     "description": "The definition document itself: key, name, steps and the rest"},
]}
_RUN_ID = {"name": "run_id", "in": "path", "required": True, "description": "The run's id",
           "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}}


def _query(name: str, description: str, schema: dict, repeated: bool = False) -> dict:
    """A query parameter; an empty value means "not given", as a form that leaves a field blank sends it."""
    schema = {"anyOf": [schema, {"const": ""}]}
    if repeated:
        schema = {"type": "array", "items": schema}
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema,
            **({"style": "form", "explode": True} if repeated else {})}


_DATE = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$"}
_RUN_FILTERS = [
    _query("workflow", "Workflow keys", {"type": "string"}, repeated=True),
    _query("status", "Run statuses", {"type": "string", "enum": [s.value for s in RunStatus]}, repeated=True),
    _query("trigger", "Triggers", {"type": "string", "enum": list(TRIGGERS)}, repeated=True),
    _query("kind", "Workflow types", {"type": "string", "enum": list(KINDS)}, repeated=True),
    _query("queue", "Queues", {"type": "string"}, repeated=True),
    _query("version", "Version numbers", {"type": "string", "pattern": "^[0-9]{1,9}$"}, repeated=True),
    _query("key", "A record key: runs whose context record or log lines carry it",
           {"type": "string", "maxLength": 120}),
    _query("range", "A preset time range when since/until are not given (default: the last 30 days)",
           {"type": "string", "enum": ["today", "7d", "30d", "all"]}),
    _query("since", "Runs queued at or after this ISO date (UTC) or date and time", _DATE),
    _query("until", "Runs queued before the end of this ISO date (UTC), or before this date and time", _DATE),
    _query("before", "Runs with ids below this (the `next` URL sets it)",
           {"type": "integer", "minimum": 0, "maximum": MAX_ID}),
    _query("limit", "Runs per page", {"type": "integer", "minimum": 1, "maximum": 200}),
]


def _operation(operation_id: str, summary: str, answers: dict, *, errors: tuple, parameters=(), body=None,
               public: bool = False) -> dict:
    """One operation: its successful answers as {status: (description, schema name)}, and the errors it gives."""
    responses = {}
    for status, (description, schema) in answers.items():
        content_schema = _ref(schema) if schema else {"type": "object"}
        responses[str(status)] = {"description": description,
                                  "content": {"application/json": {"schema": content_schema}}}
    for status in sorted(set(errors) | (set() if public else set(TOKEN_ERRORS))):
        responses[str(status)] = _error_response(status)
    operation = {"operationId": operation_id, "summary": summary, "responses": responses}
    if public:
        operation["security"] = []
    if parameters:
        operation["parameters"] = list(parameters)
    if body:
        operation["requestBody"] = body
    return operation


def _error_response(status: int) -> dict:
    response = {"description": ERRORS[status], "content": {"application/json": {"schema": _ref("Error")}}}
    if status == 429:
        response["headers"] = {"Retry-After": {"required": True, "description": "Seconds to wait before retrying",
                                               "schema": {"type": "integer", "minimum": 0}}}
    return response


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict) -> dict:
    return {**schema, "type": [schema["type"], "null"]}


_TIME = {"type": "string", "format": "date-time", "description": "UTC, ISO 8601 with a Z"}
_FAILURE = {
    "type": ["object", "null"],
    "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": ["string", "null"]}},
    "additionalProperties": False,
}


def _object(properties: dict, description: str = "") -> dict:
    schema = {"type": "object", "required": list(properties), "properties": properties, "additionalProperties": False}
    if description:
        schema["description"] = description
    return schema


SCHEMAS = {
    "Error": _object({
        "error": {"type": "string", "description": "What went wrong, for a person"},
        "fields": {"type": "object", "additionalProperties": {"type": "string"},
                   "description": "What is wrong with each named field; empty when no field is to blame"},
    }),
    "RunRequest": {
        "type": "object",
        "properties": {
            "params": {"type": "object", "description": "Parameter values by name, in their JSON types (a date as "
                                                        "\"2026-01-31\"); GET /workflows does not list them"},
            "record": {
                "type": ["object", "null"],
                "description": "The context record the run is about; placeholders see it as `record`, and the "
                               "run's log lines carry its key, so the run can be found by that key",
                "properties": {"key": {"type": ["string", "integer"], "minLength": 1, "maxLength": 120}},
                "required": ["key"],
            },
        },
        "additionalProperties": False,
    },
    "ReplayRequest": {
        "type": "object",
        "properties": {
            "params": {"type": "object", "description": "Parameter values to change, by name, laid over the source "
                                                        "run's values (null clears one); checked like a new run's"},
            "record": {
                "type": ["object", "null"],
                "description": "A context record to use instead of the source run's (null keeps the source's)",
                "properties": {"key": {"type": ["string", "integer"], "minLength": 1, "maxLength": 120}},
                "required": ["key"],
            },
            "at": {"type": ["string", "null"], "description": "Start it at this future date and time (ISO 8601; "
                                                               "UTC unless it has an offset), within a year; null or "
                                                               "absent: now"},
        },
        "additionalProperties": False,
    },
    "RunStarted": _object({
        "id": {"type": "integer"},
        "status": {"type": "string", "enum": [RunStatus.PENDING.value]},
        "url": {"type": "string", "format": "uri", "description": "This run in the API"},
        "html_url": {"type": "string", "format": "uri", "description": "This run's page"},
    }),
    "ReplayStarted": _object({
        "id": {"type": "integer", "description": "The new run"},
        "status": {"type": "string", "enum": [RunStatus.PENDING.value]},
        "replay_of": {"type": "integer", "description": "The run it replays"},
        "scheduled_for": {**_nullable(_TIME), "description": "When rq-scheduler queues it (UTC); null for now"},
        "url": {"type": "string", "format": "uri", "description": "The new run in the API"},
        "html_url": {"type": "string", "format": "uri", "description": "The new run's page"},
    }),
    "RetryQueued": _object({
        "id": {"type": "integer"},
        "attempt": {"type": "integer", "minimum": 2},
        "status": {"type": "string", "enum": [RunStatus.PENDING.value]},
        "plan": _object({
            "attempt": {"type": "integer"},
            "resume_at": {"type": "string", "description": "The step the attempt starts at"},
            "version": {"type": "integer", "description": "The version the attempt runs"},
            "version_note": {"type": ["string", "null"],
                             "description": "Why the attempt keeps the version it ran before, when it does"},
            "steps": {"type": "array", "items": _object({
                "key": {"type": "string"},
                "name": {"type": "string"},
                "type": {"type": "string"},
                "action": {"type": "string", "enum": ["reused", "runs again", "runs"]},
                "completed_in_attempt": {"type": ["integer", "null"]},
            })},
        }),
        "url": {"type": "string", "format": "uri"},
        "html_url": {"type": "string", "format": "uri"},
    }),
    "StepRetryQueued": _object({
        "id": {"type": "integer"},
        "status": {"type": "string", "enum": [RunStatus.PENDING.value]},
        "step": {"type": "string"},
        "retries": {"type": "integer", "minimum": 1, "description": "How many times the step has been retried"},
        "url": {"type": "string", "format": "uri"},
    }),
    "CancelAnswer": _object({
        "id": {"type": "integer"},
        "outcome": {"type": "string", "enum": ["cancelled", "requested"],
                    "description": "cancelled: stopped at once; requested: stops after the current step"},
        "status": {"type": "string", "enum": [s.value for s in RunStatus]},
    }),
    "RunList": _object({
        "runs": {"type": "array", "items": {"$ref": "#/components/schemas/RunSummary"}},
        "next": {"type": ["string", "null"], "description": "The next (older) page, or null on the last"},
    }),
    "Run": _object({
        "id": {"type": "integer"},
        "workflow": {"type": "string", "description": "The workflow's key when the run started"},
        "workflow_name": {"type": "string", "description": "The workflow's name when the run started"},
        "version": {"type": "integer", "description": "The published version the run executes"},
        "status": {"type": "string", "enum": [s.value for s in RunStatus]},
        "attempt": {"type": "integer", "minimum": 1, "description": "The attempt the run is on (a retry adds one)"},
        "trigger": {"type": "string", "description": "manual, api, schedule, webhook or record"},
        "params": {"type": "object", "description": "The parameter values, after checking and conversion"},
        "record": {"type": ["object", "null"], "description": "The context record the run is about, if any"},
        "progress": _object({
            "done": {"type": "integer", "minimum": 0},
            "total": {"type": "integer", "minimum": 0},
            "percent": {"type": "integer", "minimum": 0, "maximum": 100},
        }),
        "queued_at": _TIME,
        "started_at": _nullable(_TIME),
        "finished_at": _nullable(_TIME),
        "duration_seconds": {"type": ["number", "null"], "minimum": 0},
        "error": _FAILURE,
        "url": {"type": "string", "format": "uri"},
        "html_url": {"type": "string", "format": "uri"},
        "steps": {"type": "array", "items": _object({
            "key": {"type": "string"},
            "name": {"type": "string"},
            "type": {"type": "string"},
            "status": {"type": "string", "enum": [s.value for s in StepStatus]},
            "started_at": _nullable(_TIME),
            "finished_at": _nullable(_TIME),
            "error": _FAILURE,
            "approval": {**_object({
                "message": {"type": ["string", "null"], "description": "What the step asks"},
                "roles": {"type": "array", "items": {"type": "string"}, "description": "Who may decide"},
                "due_at": _nullable(_TIME),
                "decision": {"type": ["string", "null"], "enum": [v.value for v in Verdict] + [None]},
                "decided_by": {"type": ["string", "null"]},
                "decided_at": _nullable(_TIME),
                "comment": {"type": ["string", "null"]},
            }, "An approval step's question and decision; null for other steps"), "type": ["object", "null"]},
        })},
    }),
    "ApprovalRequest": {
        "type": "object",
        "required": ["decision"],
        "properties": {
            "decision": {"type": "string", "enum": ["approve", "reject"]},
            "comment": {"type": ["string", "null"], "maxLength": 2000, "description": "Why, shown on the step"},
        },
        "additionalProperties": False,
    },
    "ApprovalDecided": _object({
        "id": {"type": "integer"},
        "status": {"type": "string", "enum": [s.value for s in RunStatus]},
        "decision": {"type": "string", "enum": ["approve", "reject"]},
        "step": {"type": "string", "description": "The key of the approval step decided"},
        "url": {"type": "string", "format": "uri", "description": "This run in the API"},
        "html_url": {"type": "string", "format": "uri", "description": "This run's page"},
    }),
    "WorkflowList": _object({
        "workflows": {"type": "array", "items": _object({
            "key": {"type": "string"},
            "name": {"type": "string"},
            "kind": {"type": "string", "enum": list(KINDS)},
            "state": {"type": "string", "enum": [s.value for s in WorkflowState]},
            "enabled": {"type": "boolean"},
            "queue": {"type": "string"},
            "version": {"type": ["integer", "null"], "description": "The published version; null for a draft"},
        })},
    }),
}

_LIMIT = {name: {"type": ["integer", "null"] if name in NULLABLE else "integer", "minimum": low, "maximum": high}
          for name, (low, high) in BOUNDS.items()}
_SETTINGS = {"queue": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,79}$",
                       "description": "The RQ queue its runs go to (a node)"},
             "timeout_seconds": {**_LIMIT["timeout_seconds"], "description": "The job timeout of a run; null: the "
                                 "configured default"},
             "max_runtime_seconds": {**_LIMIT["max_runtime_seconds"], "description": "A run taking longer ends as "
                                     "an error; null: no limit"},
             "max_actions": {**_LIMIT["max_actions"], "description": "Steps a run may execute; null: no limit"},
             "max_nodes": {**_LIMIT["max_nodes"], "description": "Steps a saved definition may have"}}
_VERSION = _object({
    "number": {"type": "integer", "minimum": 1},
    "summary": {"type": "string"},
    "author": {"type": ["string", "null"], "description": "Who saved it (an email); null for a file loaded by the CLI"},
    "created_at": _TIME,
    "live": {"type": "boolean", "description": "Whether this is the published version, the one that runs"},
    "restored_from": {"type": ["integer", "null"], "description": "The version it copies, when it was a restore"},
    "settings": {"type": ["object", "null"], "description": "The workflow's settings when it was saved"},
})
SCHEMAS.update({
    "DefinitionRequest": {
        "type": "object",
        "required": ["definition"],
        "properties": {
            "definition": {"type": "object", "description": "The workflow definition: key, name, description, kind, "
                           "trigger, params, steps; it may carry queue, allowed_roles and a settings object, which "
                           "apply to the workflow at once and are not versioned"},
            "summary": {"type": ["string", "null"], "maxLength": 255,
                        "description": "What changed, for the versions list; generated when absent"},
        },
        "additionalProperties": False,
    },
    "SettingsRequest": {"type": "object", "properties": _SETTINGS, "additionalProperties": False},
    "Workflow": _object({
        "key": {"type": "string"},
        "name": {"type": "string"},
        "description": {"type": "string"},
        "kind": {"type": "string", "enum": list(KINDS)},
        "trigger": {"type": "string", "enum": list(TRIGGERS)},
        "state": {"type": "string", "enum": [s.value for s in WorkflowState]},
        "enabled": {"type": "boolean"},
        "archived": {"type": "boolean"},
        "version": {"type": ["integer", "null"], "description": "The published version; null for a draft"},
        "latest_version": {"type": ["integer", "null"], "description": "The newest saved version"},
        "has_unpublished_changes": {"type": "boolean",
                                    "description": "Whether a version or the working copy is newer than the live one"},
        "allowed_roles": {"type": ["array", "null"], "items": {"type": "string", "enum": list(ROLES)},
                          "description": "Roles that may see and run it; null: every role"},
        "settings": _object({**_SETTINGS,
                             "queue": {"type": "string", "description": _SETTINGS["queue"]["description"]}}),
        "url": {"type": "string", "format": "uri", "description": "Its versions in the API"},
        "html_url": {"type": "string", "format": "uri", "description": "Its page"},
    }),
    "Version": _VERSION,
    "VersionDetail": _object({
        **_VERSION["properties"],
        "definition": {"type": "object", "description": "The versioned definition"},
        "changes": {"type": "object", "additionalProperties": {"type": "array", "minItems": 2, "maxItems": 2},
                    "description": "What changed since the version before it, by path: [before, after]"},
    }),
    "VersionList": _object({
        "workflow": _ref("Workflow"),
        "versions": {"type": "array", "items": _VERSION},
    }),
    "SettingsUpdated": _object({
        "workflow": _ref("Workflow"),
        "changes": {"type": "object", "additionalProperties": {"type": "array", "minItems": 2, "maxItems": 2},
                    "description": "Each setting that changed: [before, after]"},
    }),
    "AuditList": _object({
        "events": {"type": "array", "items": _object({
            "id": {"type": "integer"},
            "at": _TIME,
            "actor": {"type": "string", "description": "Who acted (an email, or the process that did)"},
            "action": {"type": "string"},
            "changes": {"type": "object", "additionalProperties": {"type": "array", "minItems": 2, "maxItems": 2},
                        "description": "Each field that changed: [before, after]; definition fields by their path "
                                       "such as `steps.notify.with.url`"},
        })},
        "next": {"type": ["string", "null"], "description": "The next (older) page, or null on the last"},
    }),
})

SCHEMAS["RunSummary"] = _object(
    {name: schema for name, schema in SCHEMAS["Run"]["properties"].items() if name != "steps"},
    "A run without its steps",
)
