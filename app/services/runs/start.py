"""Starting runs: the checks, the pending run, its job enqueued after commit."""
import sqlalchemy as sa
from sqlalchemy.orm import Session

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


def last_run_times(session: Session, workflows: list[Workflow]) -> dict[int, object]:
    """When each workflow was last run: the newest run id per workflow, read at the end of its part of the
    (workflow_id, id) index, then those runs' times. PostgreSQL plans both `max(id)` and `ORDER BY id DESC LIMIT 1`
    as a backward walk of the primary key that filters workflow_id, which reads most of the table for a workflow
    with no recent runs (a second each at a million runs); the row comparison can only be answered by the
    (workflow_id, id) index."""
    if not workflows:
        return {}
    newest = (
        sa.select(Run.id)
        .where(Run.workflow_id == Workflow.id, sa.tuple_(Run.workflow_id, Run.id) < sa.tuple_(Workflow.id + 1, 0))
        .order_by(Run.workflow_id.desc(), Run.id.desc())
        .limit(1)
        .correlate(Workflow)
        .scalar_subquery()
    )
    run_ids = session.scalars(sa.select(newest).where(Workflow.id.in_([w.id for w in workflows]))).all()
    rows = session.execute(sa.select(Run.workflow_id, Run.queued_at).where(Run.id.in_([i for i in run_ids if i])))
    return {workflow_id: when for workflow_id, when in rows}


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
    if not workflow.enabled:
        raise Conflict("This workflow is disabled; enable it before running it.")
    version = workflow.published_version
    definition = definition_of(version)
    try:
        params = coerce_params(definition.params, raw_params, from_form=from_form)
        record_key = check_record(record)
    except ParamErrors as exc:
        raise Invalid("Some parameters are invalid.", fields=exc.errors) from None
    run = pending_run(workflow, version, definition, user, Trigger(trigger), params=params, context=record,
                      record_key=record_key)
    session.add(run)
    session.flush()
    run_id, queue, attempt = run.id, run.queue, run.attempt
    after_commit(session, lambda: enqueue_execute(run_id, queue, attempt))
    return run


def pending_run(workflow: Workflow, version: WorkflowVersion, definition: Definition, user: User, trigger: Trigger,
                trigger_detail: str | None = None, **fields) -> Run:
    """A new pending run of `version` (not yet added to the session), the shape every way of starting one shares:
    the workflow's key and name as they are now, its queue, who started it and how, the steps it may take."""
    return Run(
        workflow_id=workflow.id, version_id=version.id, workflow_key=workflow.key, workflow_name=workflow.name,
        status=RunStatus.PENDING.value, trigger=trigger.value, triggered_by_id=user.id,
        trigger_detail=(trigger_detail or f"{trigger.value} by {user.email}")[:255], queue=workflow.queue,
        progress_total=len(definition.steps), queued_at=utcnow(), **fields,
    )


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
