"""Authoring: create a workflow as a draft, save its definition as a new version (every save is one), clone it,
archive it. Only admins author; the caller commits.

A definition document holds what is versioned (key, name, description, kind, trigger, params, steps). It may also
carry settings (`queue`, `allowed_roles`, a `settings` object): those are applied to the workflow at once, kept in
the version's `settings` copy, and left out of the versioned definition and the working copy.
"""
import copy
import re
import unicodedata

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.database import lock_row
from app.engine.definition import KEY_RE, RESERVED_KEYS, Definition, DefinitionError, parse_definition
from app.engine.diff import diff_definitions
from app.engine.limits import check_limits, versioned_part
from app.models import User, Workflow, WorkflowVersion
from app.models.workflow import same_document
from app.security import Capability, can
from app.services.audit import AuditAction, AuditEntity, record
from app.services.errors import Conflict, Invalid, PermissionDenied
from app.services.workflows.settings import apply_carried, carried_settings
from app.timeutil import utcnow
from app.vocabulary import Trigger, WorkflowState

MAX_SUMMARY = 255
MAX_CLONE_NAME = 50


def create_draft(session: Session, user: User, document: dict, summary: str | None = None) -> Workflow:
    """Create a workflow from a definition document as a draft (admins only), with the document as its version 1
    and working copy. Invalid names each bad field, `key` when another workflow has it."""
    require_author(user)
    summary = check_summary(summary)
    definition = check_document(document)
    key_free(session, definition.key)
    versioned = versioned_part(document)
    workflow = Workflow(key=definition.key, draft_definition=versioned, state=WorkflowState.DRAFT.value, enabled=True)
    apply_identity(workflow, definition, versioned)
    apply_carried(workflow, document, defaults=True)
    session.add(workflow)
    session.flush()
    version = add_version(session, workflow, user, versioned, summary or "Created")
    record(session, user, AuditEntity.WORKFLOW, workflow.id, AuditAction.CREATE_WORKFLOW,
           {"key": [None, workflow.key], "name": [None, workflow.name], "version": [None, version.number]})
    return workflow


def save_version(session: Session, workflow: Workflow, user: User, summary: str | None = None,
                 document: dict | None = None) -> WorkflowVersion:
    """Save `document` (or the working copy, when None) as the workflow's next version (admins only): checked like
    a new workflow, within the workflow's max nodes, its key fixed once it was published. The summary defaults to
    one generated from what changed. Conflict when nothing changed since the newest version."""
    require_author(user)
    if workflow.is_archived:
        raise Conflict("This workflow is archived; nothing can be saved to it.")
    summary = check_summary(summary)
    if document is None:
        document = workflow.draft_definition
    limits, _ = check_limits(document.get("settings") if isinstance(document, dict) else None)
    definition = check_document(document, limits.get("max_nodes", workflow.max_nodes))
    carried = carried_settings(document, defaults=False)
    if definition.key != workflow.key:
        if workflow.state == WorkflowState.PUBLISHED:
            raise Invalid("The key of a published workflow cannot change.",
                          fields={"key": f"cannot change once published; it stays '{workflow.key}'"})
        key_free(session, definition.key)
    versioned = versioned_part(document)
    latest = workflow.latest_version
    before = versioned_part(latest.definition) if latest else None  # versions saved before settings moved out
    if before is not None and same_document(before, versioned) and not _changes_settings(workflow, carried):
        raise Conflict(f"Nothing changed since {latest.label}.")
    diff = diff_definitions(before, versioned)
    settings_changes = apply_carried(workflow, document, defaults=False)
    if definition.key != workflow.key:
        workflow.key = definition.key
    workflow.draft_definition = versioned
    if not workflow.is_published:  # a draft's name and trigger follow its newest version; else they wait to publish
        apply_identity(workflow, definition, versioned)
    text = summary or (diff.summary if diff.changed else "changed settings")
    version = add_version(session, workflow, user, versioned, text)
    changes = {**diff.audit_changes(), **settings_changes,
               "version": [latest.number if latest else None, version.number]}
    record(session, user, AuditEntity.WORKFLOW, workflow.id, AuditAction.SAVE_VERSION, changes)
    return version


def clone(session: Session, workflow: Workflow, user: User, name: str) -> Workflow:
    """Copy a workflow as a new draft named `name` (at most 50 characters): its newest version becomes the copy's
    version 1, under a key made from the name; its settings are copied. Admins only."""
    require_author(user)
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        raise Invalid("Give the copy a name.", fields={"name": "is required"})
    if len(name) > MAX_CLONE_NAME:
        raise Invalid("The name is too long.",
                      fields={"name": f"must be at most {MAX_CLONE_NAME} characters (it has {len(name)})"})
    source = workflow.latest_version
    document = versioned_part(copy.deepcopy(source.definition if source else workflow.draft_definition))
    document["key"] = unique_key(session, slug(name))
    document["name"] = name
    definition = check_document(document, max(workflow.max_nodes, len(document.get("steps") or [])))
    copy_ = Workflow(key=definition.key, draft_definition=document, state=WorkflowState.DRAFT.value, enabled=True,
                     **{field: copy.deepcopy(getattr(workflow, field)) for field in CLONED_SETTINGS})
    apply_identity(copy_, definition, document)
    session.add(copy_)
    session.flush()
    version = add_version(session, copy_, user, document,
                          f"Cloned from {workflow.name} {source.label}" if source else f"Cloned from {workflow.name}")
    record(session, user, AuditEntity.WORKFLOW, copy_.id, AuditAction.CLONE,
           {"cloned_from": [None, f"{workflow.key} {source.label if source else ''}".strip()],
            "key": [None, copy_.key], "name": [None, name], "version": [None, version.number]})
    return copy_


CLONED_SETTINGS = ("queue", "allowed_roles", "timeout_seconds", "max_runtime_seconds", "max_actions", "max_nodes",
                   "timezone")


def archive(session: Session, workflow: Workflow, user: User) -> None:
    """Archive a workflow (admins only): hidden from the lists, disabled, never run again; its versions, runs and
    logs stay. Runs in progress go on."""
    require_author(user)
    if workflow.is_archived:
        raise Conflict("This workflow is already archived.")
    changes = {"archived": [False, True]}
    if workflow.enabled:
        changes["enabled"] = [True, False]
    workflow.archived_at = utcnow()
    workflow.enabled = False
    record(session, user, AuditEntity.WORKFLOW, workflow.id, AuditAction.ARCHIVE, changes)


def require_author(user: User) -> None:
    if not can(user, Capability.AUTHOR_WORKFLOW):
        raise PermissionDenied("Only administrators create and change workflow definitions.")


def check_summary(summary) -> str:
    """A change summary as given (stripped), or "" for none; Invalid when too long."""
    if summary is None:
        return ""
    if not isinstance(summary, str):
        raise Invalid("The summary must be text.", fields={"summary": "must be text"})
    summary = " ".join(summary.split())
    if len(summary) > MAX_SUMMARY:
        raise Invalid("The summary is too long.", fields={"summary": f"must be at most {MAX_SUMMARY} characters"})
    return summary


def check_document(document, max_nodes: int | None = None) -> Definition:
    """The parsed definition; Invalid naming each bad field (several problems of one field joined)."""
    try:
        return parse_definition(document, max_nodes=max_nodes)
    except DefinitionError as exc:
        fields: dict[str, str] = {}
        for field, message in exc.errors:
            fields[field] = f"{fields[field]}; {message}" if field in fields else message
        count = len(exc.errors)
        raise Invalid(f"The definition has {count} problem{'s' if count != 1 else ''}; see the fields.",
                      fields=fields) from None


def key_free(session: Session, key: str) -> None:
    """Invalid on `key` when a workflow already has it."""
    if session.scalar(sa.select(Workflow.id).where(Workflow.key == key)) is not None:
        raise Invalid(f"The key '{key}' is taken.", fields={"key": f"'{key}' is already used by another workflow"})


def apply_identity(workflow: Workflow, definition: Definition, document: dict) -> None:
    """Name, description, kind and trigger from a definition (the published one, or a draft's newest)."""
    workflow.name = definition.name
    workflow.description = definition.description
    workflow.kind = definition.kind
    workflow.trigger = document.get("trigger", Trigger.MANUAL.value)


def add_version(session: Session, workflow: Workflow, user: User | None, document: dict, summary: str,
                restored_from: int | None = None) -> WorkflowVersion:
    """Add the workflow's next version (numbers never repeat) with a copy of its settings as they are now."""
    lock_row(session, Workflow, workflow.id)  # until commit: two saves (or restores) cannot both take one number
    number = (session.scalar(sa.select(sa.func.max(WorkflowVersion.number))
                             .where(WorkflowVersion.workflow_id == workflow.id)) or 0) + 1
    version = WorkflowVersion(workflow_id=workflow.id, number=number, definition=copy.deepcopy(document),
                              summary=summary[:MAX_SUMMARY], settings=workflow.settings,
                              restored_from=restored_from, author_id=user.id if user else None,
                              created_at=utcnow())
    session.add(version)
    session.flush()
    session.expire(workflow, ["versions"])
    return version


def slug(name: str) -> str:
    """A workflow key made from a name: lowercase ASCII letters and digits joined by '-'."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return text[:70].strip("-") or "workflow"


def unique_key(session: Session, base: str) -> str:
    """`base`, or `base-2`, `base-3`... the first no workflow has."""
    taken = set(session.scalars(sa.select(Workflow.key).where(Workflow.key.like(f"{base}%"))))
    key, n = base, 1
    while key in taken or key in RESERVED_KEYS or not KEY_RE.match(key):
        n += 1
        key = f"{base}-{n}"
    return key


def _changes_settings(workflow: Workflow, carried: dict) -> bool:
    return any(getattr(workflow, name) != value for name, value in carried.items())
