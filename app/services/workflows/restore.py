"""Restoring an earlier version: a new version copied from it becomes the working copy, and the live version too
when the workflow is published; refused while any run of the workflow is active."""
import copy

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.engine.limits import versioned_part
from app.engine.states import ACTIVE
from app.models import Run, User, Workflow, WorkflowVersion
from app.models.workflow import MAX_VERSION_NUMBER
from app.services.audit import AuditAction, AuditEntity, record
from app.services.errors import Conflict, NotFound
from app.services.workflows.drafts import add_version, apply_identity, check_document, key_free, require_author


def active_run_count(session: Session, workflow: Workflow) -> int:
    """How many runs of the workflow are pending, running, waiting or waiting for approval."""
    return session.scalar(sa.select(sa.func.count()).select_from(Run).where(
        Run.workflow_id == workflow.id, Run.status.in_([s.value for s in ACTIVE])))


def restore_refusal(session: Session, workflow: Workflow) -> str | None:
    """Why no version of the workflow can be restored now (runs in flight, archived), or None."""
    if workflow.is_archived:
        return "This workflow is archived; its versions cannot be restored."
    count = active_run_count(session, workflow)
    if count:
        runs = "1 run is" if count == 1 else f"{count} runs are"
        return (f"Restore is refused while runs are in flight: {runs} pending, running or waiting. "
                "Try again once they have finished (or cancel them).")
    return None


def restore(session: Session, workflow: Workflow, user: User, number: int) -> WorkflowVersion:
    """Restore version `number` (admins only): in one transaction, a new version copied from it ("Restored from
    vN") becomes the working copy and, when the workflow is published, the live version. Version numbers never
    repeat. Conflict while any run of the workflow is active; NotFound for a version it does not have."""
    require_author(user)
    source = None
    if 1 <= number <= MAX_VERSION_NUMBER:
        source = session.scalar(sa.select(WorkflowVersion).where(WorkflowVersion.workflow_id == workflow.id,
                                                                  WorkflowVersion.number == number))
    if source is None:
        raise NotFound(f"This workflow has no version {number}.")
    refusal = restore_refusal(session, workflow)
    if refusal:
        raise Conflict(refusal)
    document = versioned_part(copy.deepcopy(source.definition))
    if workflow.published_version_id is not None:
        document["key"] = workflow.key  # a published workflow's key never changes, even back to an older one
    definition = check_document(document, max(workflow.max_nodes, len(document.get("steps") or [])))
    if definition.key != workflow.key:
        key_free(session, definition.key)
        workflow.key = definition.key
    latest = workflow.latest_version
    before = {"published_version": workflow.published_version.number if workflow.published_version else None,
              "name": workflow.name, "trigger": workflow.trigger}
    version = add_version(session, workflow, user, document, f"Restored from {source.label}", restored_from=number)
    workflow.draft_definition = copy.deepcopy(document)
    apply_identity(workflow, definition, document)
    if workflow.published_version_id is not None:
        workflow.published_version_id = version.id
        workflow.published_version = version
    after = {"published_version": workflow.published_version.number if workflow.published_version else None,
             "name": workflow.name, "trigger": workflow.trigger}
    changes = {"restored_from": [None, number], "version": [latest.number if latest else None, version.number]}
    changes.update({name: [value, after[name]] for name, value in before.items() if after[name] != value})
    record(session, user, AuditEntity.WORKFLOW, workflow.id, AuditAction.RESTORE, changes)
    return version
