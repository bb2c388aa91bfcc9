"""Loading workflow definitions: create or version a workflow and publish it."""
import json
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.engine.definition import parse_definition
from app.models import User, Workflow, WorkflowVersion
from app.timeutil import utcnow
from app.vocabulary import Trigger, WorkflowState


@dataclass
class LoadResult:
    workflow: Workflow
    version: WorkflowVersion
    created: bool  # a new workflow
    changed: bool  # a new version (False when the file matched the published version)


def _same(a: dict, b: dict) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def load_definition(session: Session, document: dict, author: User | None = None, summary: str = "") -> LoadResult:
    """Create a workflow from a definition, or save it as a new version of the existing one, and publish it.

    Loading the same document twice changes nothing. Raises DefinitionError naming each bad field.
    """
    definition = parse_definition(document)
    workflow = session.scalar(sa.select(Workflow).where(Workflow.key == definition.key))
    created = workflow is None
    if created:
        workflow = Workflow(key=definition.key, draft_definition=document, state=WorkflowState.DRAFT.value)
        session.add(workflow)
    elif workflow.published_version is not None and _same(workflow.published_version.definition, document):
        return LoadResult(workflow, workflow.published_version, created=False, changed=False)
    workflow.name = definition.name
    workflow.description = definition.description
    workflow.kind = definition.kind
    workflow.queue = definition.queue
    workflow.trigger = document.get("trigger", Trigger.MANUAL.value)
    workflow.allowed_roles = document.get("allowed_roles")
    workflow.draft_definition = document
    session.flush()
    number = (
        session.scalar(sa.select(sa.func.max(WorkflowVersion.number)).where(WorkflowVersion.workflow_id == workflow.id))
        or 0
    ) + 1
    version = WorkflowVersion(
        workflow_id=workflow.id,
        number=number,
        definition=document,
        summary=summary or ("Created" if created else "Loaded from file"),
        author_id=author.id if author else None,
        created_at=utcnow(),
    )
    session.add(version)
    session.flush()
    workflow.published_version_id = version.id
    workflow.state = WorkflowState.PUBLISHED.value
    return LoadResult(workflow, version, created=created, changed=True)
