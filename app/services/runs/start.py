"""Starting runs: the checks, the pending run, its job enqueued after commit."""
from sqlalchemy.orm import Session

from app.database import built, insert_as_loaded
from app.engine.definition import Definition
from app.engine.params import ParamErrors, coerce_params
from app.engine.states import RunStatus
from app.models import Run, User, Workflow, WorkflowVersion
from app.security import Capability, can
from app.services import definitions
from app.services.dispatch import after_commit
from app.services.errors import Conflict, Invalid, PermissionDenied
from app.services.execution.queueing import enqueue_execute
from app.timeutil import utcnow
from app.vocabulary import Trigger


def definition_of(version: WorkflowVersion) -> Definition:
    """The parsed definition of a version (parsed once per process: see app/services/definitions.py)."""
    return definitions.parsed(version.id, lambda: version.definition)


def start_run(
    session: Session,
    workflow: Workflow,
    user: User,
    raw_params: dict,
    *,
    trigger: Trigger = Trigger.MANUAL,
    from_form: bool = False,
    record: dict | None = None,
) -> Run:
    """Check the user may run the workflow and the parameters are valid, then add a pending run.

    `record` is the context record the run is about (`{"key": "INV-2291", ...}`): stored on the run,
    visible to placeholders as `record`, and its key is carried by the run's log lines. The run is
    enqueued on the workflow's queue when the caller commits. Raises PermissionDenied, Conflict (a draft or
    disabled workflow) or Invalid naming each bad parameter (a bad record too, named `record` or `record.key`).
    """
    if not can(user, Capability.RUN_WORKFLOW):
        raise PermissionDenied("Your role cannot run workflows.")
    if workflow.allowed_roles and user.role not in workflow.allowed_roles and not can(user, Capability.VIEW_DRAFTS):
        raise PermissionDenied("Your role is not allowed to run this workflow.")
    if not workflow.is_published:
        raise Conflict("This workflow is a draft; publish it before running it.")
    if workflow.is_archived:
        raise Conflict("This workflow is archived; it no longer runs.")
    if not workflow.enabled:
        raise Conflict("This workflow is disabled; enable it before running it.")
    version_id = workflow.published_version_id
    definition = definitions.of_version(session, version_id)  # no read of the version once it is parsed
    try:
        params = coerce_params(definition.params, raw_params, from_form=from_form)
        record_key = check_record(record)
    except ParamErrors as exc:
        raise Invalid("Some parameters are invalid.", fields=exc.errors) from None
    run = pending_run(workflow, version_id, definition, user, Trigger(trigger), params=params, context=record,
                      record_key=record_key)
    insert_as_loaded(session, [run])
    run_id, queue, attempt, timeout = run.id, run.queue, run.attempt, run.job_timeout_seconds
    after_commit(session, lambda: enqueue_execute(run_id, queue, attempt, timeout))
    return run


def pending_run(workflow: Workflow, version_id: int, definition: Definition, user: User, trigger: Trigger,
                trigger_detail: str | None = None, **fields) -> Run:
    """A new pending run of version `version_id` (not yet added to the session), the shape every way of starting one
    shares: the workflow's key and name as they are now, its queue, job timeout and safety limits, who started it and
    how, the steps it may take."""
    return built(
        Run, workflow_id=workflow.id, version_id=version_id, workflow_key=workflow.key, workflow_name=workflow.name,
        status=RunStatus.PENDING.value, attempt=1, trigger=trigger.value, triggered_by_id=user.id,
        trigger_detail=(trigger_detail or f"{trigger.value} by {user.email}")[:255], queue=workflow.queue,
        progress_total=len(definition.steps), queued_at=utcnow(), **limits_of(workflow), **fields,
    )


def limits_of(workflow: Workflow) -> dict:
    """The job timeout and safety limits a new attempt is queued with: the workflow's settings now."""
    return {"job_timeout_seconds": workflow.timeout_seconds, "max_runtime_seconds": workflow.max_runtime_seconds,
            "max_actions": workflow.max_actions}


MAX_RECORD_KEY = 120


def check_record(record) -> str | None:
    """The key of a context record, or None without one; ParamErrors names what is wrong with it."""
    if record is None:
        return None
    if not isinstance(record, dict):
        raise ParamErrors({"record": "must be an object with a \"key\", like {\"key\": \"INV-2291\"}"})
    key = record.get("key")
    if isinstance(key, int) and not isinstance(key, bool):
        key = str(key)
    if not isinstance(key, str) or not key.strip():
        raise ParamErrors({"record.key": "is required: the text people search the record by"})
    if len(key) > MAX_RECORD_KEY:
        raise ParamErrors({"record.key": f"must be at most {MAX_RECORD_KEY} characters"})
    return key.strip()
