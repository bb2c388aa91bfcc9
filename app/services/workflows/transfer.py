"""Workflow definitions in and out as files: load a document (create or version a workflow, and publish it unless
it is loaded as a draft), and export one with its settings."""
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.engine.definition import parse_definition
from app.engine.diff import diff_definitions
from app.engine.limits import versioned_part
from app.models import User, Workflow, WorkflowVersion
from app.models.workflow import same_document
from app.services.audit import AuditAction, AuditEntity, record
from app.services.workflows.drafts import add_version, apply_identity
from app.services.workflows.settings import apply_carried, carried_settings
from app.vocabulary import WorkflowState

LOADER = "flask workflows load"  # who the audit log says acted when no person is named


@dataclass
class LoadResult:
    workflow: Workflow
    version: WorkflowVersion
    created: bool  # a new workflow
    changed: bool  # a new version (False when the file matched the newest version and the settings)
    published: bool = True  # the version is the live one (False when loaded as a draft)


def load_definition(session: Session, document: dict, author: User | None = None, summary: str = "",
                    draft: bool = False) -> LoadResult:
    """Create a workflow from a definition, or save it as a new version of the existing one, and publish it (with
    `draft`, leave it unpublished: a new workflow stays a draft, an existing one keeps its live version). The
    settings the file carries (queue, allowed_roles, settings) apply to the workflow.

    Loading the same document twice changes nothing. Raises DefinitionError naming each bad field.
    """
    definition = parse_definition(document)
    versioned = versioned_part(document)
    actor = author or LOADER
    workflow = session.scalar(sa.select(Workflow).where(Workflow.key == definition.key))
    created = workflow is None
    if created:
        workflow = Workflow(key=definition.key, draft_definition=versioned, state=WorkflowState.DRAFT.value)
        session.add(workflow)
    else:
        latest = workflow.latest_version
        unchanged = (latest is not None and same_document(versioned_part(latest.definition), versioned)
                     and not _settings_differ(workflow, document))
        if unchanged and (draft or latest.id == workflow.published_version_id):
            return LoadResult(workflow, latest, created=False, changed=False,
                              published=latest.id == workflow.published_version_id)
    settings_changes = apply_carried(workflow, document, defaults=True)
    workflow.draft_definition = versioned
    if created or not draft or not workflow.is_published:
        apply_identity(workflow, definition, versioned)
    session.flush()
    latest = workflow.latest_version
    before = versioned_part(latest.definition) if latest else None  # versions saved before settings moved out
    if before is None or not same_document(before, versioned):
        diff = diff_definitions(before, versioned)
        version = add_version(session, workflow, author, versioned,
                              summary or ("Created" if created else f"Loaded from file: {diff.summary}"))
        changes = {} if created else diff.audit_changes()
        record(session, actor, AuditEntity.WORKFLOW, workflow.id,
               AuditAction.CREATE_WORKFLOW if created else AuditAction.SAVE_VERSION,
               {**changes, **settings_changes, "version": [latest.number if latest else None, version.number]})
    else:
        version = latest  # only the settings changed, or the newest version is published as it is
    if settings_changes and version is latest:
        record(session, actor, AuditEntity.WORKFLOW, workflow.id, AuditAction.UPDATE_SETTINGS, settings_changes)
    if not draft:
        old = workflow.published_version_id
        workflow.published_version_id = version.id
        workflow.published_version = version
        workflow.state = WorkflowState.PUBLISHED.value
        if old != version.id:
            record(session, actor, AuditEntity.WORKFLOW, workflow.id, AuditAction.PUBLISH,
                   {"published_version": [None if old is None else _number(session, old), version.number]})
    return LoadResult(workflow, version, created=created, changed=True, published=not draft)


def export_document(workflow: Workflow, version: WorkflowVersion | None = None) -> dict:
    """A portable definition file of the workflow: the version's definition (by default the newest saved) with the
    workflow's settings as they are now, so loading it elsewhere gives the same workflow."""
    version = version or workflow.latest_version
    document = dict(versioned_part(version.definition if version else workflow.draft_definition))
    document["queue"] = workflow.queue
    if workflow.allowed_roles:
        document["allowed_roles"] = list(workflow.allowed_roles)
    document["settings"] = {"timeout_seconds": workflow.timeout_seconds,
                            "max_runtime_seconds": workflow.max_runtime_seconds,
                            "max_actions": workflow.max_actions, "max_nodes": workflow.max_nodes}
    return document


def _settings_differ(workflow: Workflow, document: dict) -> bool:
    return any(getattr(workflow, name) != value for name, value in carried_settings(document, defaults=True).items())


def _number(session: Session, version_id: int) -> int | None:
    return session.scalar(sa.select(WorkflowVersion.number).where(WorkflowVersion.id == version_id))
