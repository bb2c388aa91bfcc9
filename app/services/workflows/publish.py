"""Publishing a workflow's newest version, and turning it on and off for new runs."""
from sqlalchemy.orm import Session

from app.models import User, Workflow, WorkflowVersion
from app.security import Capability, can
from app.services.audit import AuditAction, AuditEntity, record
from app.services.errors import Conflict, PermissionDenied
from app.services.workflows.drafts import apply_identity, check_document
from app.vocabulary import WorkflowState


def publish(session: Session, workflow: Workflow, user: User) -> WorkflowVersion:
    """Make the newest saved version the one that runs (admins only): the workflow is published, its name,
    description, kind and trigger follow that version. The working copy stays as it is. Conflict when that version
    is live already, or the workflow is archived."""
    if not can(user, Capability.PUBLISH_WORKFLOW):
        raise PermissionDenied("Only administrators publish workflows.")
    if workflow.is_archived:
        raise Conflict("This workflow is archived; it cannot be published.")
    version = workflow.latest_version
    if version is None:
        raise Conflict("This workflow has no saved version to publish; save it first.")
    if version.id == workflow.published_version_id:
        raise Conflict(f"{version.label} is already live; save a change before publishing again.")
    old = workflow.published_version
    before = {"name": workflow.name, "description": workflow.description, "kind": workflow.kind,
              "trigger": workflow.trigger, "state": workflow.state}
    definition = check_document(version.definition, max(workflow.max_nodes, len(version.definition.get("steps") or [])))
    apply_identity(workflow, definition, version.definition)
    workflow.published_version_id = version.id
    workflow.published_version = version
    workflow.state = WorkflowState.PUBLISHED.value
    changes = {"published_version": [old.number if old else None, version.number]}
    changes.update({name: [value, getattr(workflow, name)] for name, value in before.items()
                    if getattr(workflow, name) != value})
    record(session, user, AuditEntity.WORKFLOW, workflow.id, AuditAction.PUBLISH, changes)
    return version


def set_enabled(session: Session, workflow: Workflow, user: User, enabled: bool) -> bool:
    """Let the workflow take new runs, or stop it taking any (runs in progress go on); admins only. Returns
    whether anything changed (setting what is already set changes nothing and records nothing)."""
    if not can(user, Capability.PUBLISH_WORKFLOW):
        raise PermissionDenied("Only administrators enable and disable workflows.")
    if enabled and workflow.is_archived:
        raise Conflict("This workflow is archived; it cannot be enabled.")
    if workflow.enabled == bool(enabled):
        return False
    workflow.enabled = bool(enabled)
    record(session, user, AuditEntity.WORKFLOW, workflow.id, AuditAction.ENABLE if enabled else AuditAction.DISABLE,
           {"enabled": [not enabled, bool(enabled)]})
    return True
