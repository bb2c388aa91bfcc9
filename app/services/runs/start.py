"""Starting runs: the checks, the pending run, its job enqueued after commit."""
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.database import built, insert_as_loaded, send_in
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
    workflow, user = as_now(session, workflow, user)
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


@dataclass(frozen=True)
class WorkflowNow:
    """What a start reads of a workflow, as the database holds it now."""

    id: int
    key: str
    name: str
    state: str
    enabled: bool
    queue: str
    allowed_roles: list | None
    published_version_id: int | None
    archived_at: datetime | None
    timeout_seconds: int | None
    max_runtime_seconds: int | None
    max_actions: int | None

    is_published = Workflow.is_published  # the model's own rules, read from these fields
    is_archived = Workflow.is_archived


@dataclass(frozen=True)
class UserNow:
    """What a start reads of the user starting it, as the database holds it now."""

    id: int
    email: str
    role: str
    is_authenticated = True  # a user read from the database, as flask-login's UserMixin says of one


_WORKFLOW_FIELDS = tuple(name for name in WorkflowNow.__dataclass_fields__ if name != "id")
_USER_FIELDS = tuple(name for name in UserNow.__dataclass_fields__ if name != "id")
_AS_NOW = sa.select(
    *(Workflow.__table__.c[name].label(f"workflow_{name}") for name in _WORKFLOW_FIELDS),
    *(User.__table__.c[name].label(f"user_{name}") for name in _USER_FIELDS),
).select_from(
    Workflow.__table__.join(User.__table__, User.__table__.c.id == sa.bindparam("user_id"))
).where(Workflow.__table__.c.id == sa.bindparam("workflow_id"))


def as_now(session: Session, workflow: Workflow, user: User) -> tuple[Workflow | WorkflowNow, User | UserNow]:
    """The workflow and the user as the checks and the new run read them: the objects themselves when they are loaded
    (a request's), or, when both were expired by a commit (a caller that starts one run after another with the same
    objects), both read again in one statement, in the session's transaction, instead of one refresh each.

    Either way the checks see the database as it is now: a workflow disabled or a role changed since the last commit
    stops the next start. Objects with changes of their own, or one that is gone, are left to the ORM."""
    workflow_state, user_state = sa.inspect(workflow), sa.inspect(user, raiseerr=False)
    if user_state is None or not all(state.persistent and state.expired and not state.modified
                                     for state in (workflow_state, user_state)):
        return workflow, user
    workflow_id, user_id = workflow_state.identity[0], user_state.identity[0]
    connection, ids = session.connection(), {"workflow_id": workflow_id, "user_id": user_id}
    if connection.dialect.name == "postgresql":  # on the driver, as the start's INSERT goes
        row = send_in(connection, _AS_NOW, ids)
    else:
        row = connection.execute(_AS_NOW, ids).mappings().first()
    if row is None:
        return workflow, user
    return (WorkflowNow(workflow_id, **{name: row[f"workflow_{name}"] for name in _WORKFLOW_FIELDS}),
            UserNow(user_id, **{name: row[f"user_{name}"] for name in _USER_FIELDS}))


def pending_run(workflow: Workflow | WorkflowNow, version_id: int, definition: Definition, user: User | UserNow,
                trigger: Trigger, trigger_detail: str | None = None, **fields) -> Run:
    """A new pending run of version `version_id` (not yet added to the session), the shape every way of starting one
    shares: the workflow's key and name as they are now, its queue, job timeout and safety limits, who started it and
    how, the steps it may take."""
    return built(
        Run, workflow_id=workflow.id, version_id=version_id, workflow_key=workflow.key, workflow_name=workflow.name,
        status=RunStatus.PENDING.value, attempt=1, trigger=trigger.value, triggered_by_id=user.id,
        trigger_detail=(trigger_detail or f"{trigger.value} by {user.email}")[:255], queue=workflow.queue,
        progress_total=len(definition.steps), queued_at=utcnow(), **limits_of(workflow), **fields,
    )


def limits_of(workflow: Workflow | WorkflowNow) -> dict:
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
