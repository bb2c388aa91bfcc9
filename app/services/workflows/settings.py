"""A workflow's settings: the job settings and safety limits managers tune on a published workflow, and the role
restrictions admins set. Live as soon as they change, audited, not versioned (each new version keeps a copy)."""
from sqlalchemy.orm import Session

from app.engine.definition import KEY_RE
from app.engine.limits import LIMIT_FIELDS, check_limit
from app.models import User, Workflow
from app.security import Capability, can
from app.services.audit import AuditAction, AuditEntity, record
from app.services.errors import Conflict, Invalid, PermissionDenied
from app.vocabulary import ROLES

SETTING_FIELDS = ("queue", *LIMIT_FIELDS)
QUEUE_PROBLEM = "must be a queue name of lowercase letters, digits, '-' or '_' (at most 80)"


def update_settings(session: Session, workflow: Workflow, user: User, values: dict) -> dict:
    """Change job settings and safety limits (queue, timeout_seconds, max_runtime_seconds, max_actions, max_nodes)
    as given in `values`; returns {field: [old, new]} of what changed. Managers may change a published workflow's,
    admins any workflow's. Invalid names each bad field."""
    if not can(user, Capability.UPDATE_WORKFLOW):
        raise PermissionDenied("Your role cannot change workflow settings.")
    if not workflow.is_published and not can(user, Capability.AUTHOR_WORKFLOW):
        raise PermissionDenied("Only administrators change the settings of a draft.")
    if workflow.is_archived:
        raise Conflict("This workflow is archived; its settings no longer change.")
    checked = check_settings(values)
    changes = _apply(workflow, checked)
    if changes:
        record(session, user, AuditEntity.WORKFLOW, workflow.id, AuditAction.UPDATE_SETTINGS, changes)
    return changes


def check_settings(values: dict) -> dict:
    """The settings in `values`, checked and converted; Invalid names every bad or unknown field."""
    if not isinstance(values, dict):
        raise Invalid("The settings must be an object.", fields={"settings": "must be an object"})
    problems: dict[str, str] = {}
    checked: dict = {}
    for name, value in values.items():
        if name == "queue":
            queue = value.strip() if isinstance(value, str) else value
            if not isinstance(queue, str) or not KEY_RE.match(queue):
                problems[name] = QUEUE_PROBLEM
            else:
                checked[name] = queue
        elif name in LIMIT_FIELDS:
            number, problem = check_limit(name, value)
            if problem:
                problems[name] = problem
            else:
                checked[name] = number
        else:
            problems[str(name)] = f"is not a setting; use {', '.join(SETTING_FIELDS)}"
    if problems:
        raise Invalid("Some settings are invalid.", fields=problems)
    return checked


def update_restrictions(session: Session, workflow: Workflow, user: User, roles: list[str] | None) -> dict:
    """Set which roles may see and run the workflow (None or an empty list: every role); admins only. Returns
    {"allowed_roles": [old, new]} when it changed."""
    if not can(user, Capability.AUTHOR_WORKFLOW):
        raise PermissionDenied("Only administrators change who may see a workflow.")
    new = check_roles(roles)
    if new == workflow.allowed_roles:
        return {}
    changes = {"allowed_roles": [workflow.allowed_roles, new]}
    workflow.allowed_roles = new
    record(session, user, AuditEntity.WORKFLOW, workflow.id, AuditAction.UPDATE_RESTRICTIONS, changes)
    return changes


def check_roles(roles) -> list[str] | None:
    """Allowed roles, checked, in the vocabulary's order (None for every role); Invalid on `allowed_roles`."""
    if roles is None or roles == []:
        return None
    if not isinstance(roles, list) or any(r not in ROLES for r in roles):
        raise Invalid("Choose roles from the list.",
                      fields={"allowed_roles": f"must be a list of roles from {', '.join(ROLES)}"})
    return [r for r in ROLES if r in roles]


def carried_settings(document: dict, *, defaults: bool) -> dict:
    """The settings a definition document carries (`queue`, `allowed_roles`, the `settings` object), by workflow
    field; with `defaults`, a file's absent queue and roles mean "default" and "every role" (a file is the whole
    truth), else absent means unchanged. The document was checked by parse_definition already."""
    found: dict = {}
    if "queue" in document or defaults:
        found["queue"] = document.get("queue", "default")
    if "allowed_roles" in document or defaults:
        found["allowed_roles"] = document.get("allowed_roles") or None
    found.update(check_settings(document.get("settings") or {}))
    return found


def apply_carried(workflow: Workflow, document: dict, *, defaults: bool) -> dict:
    """Apply the settings `document` carries to the workflow; returns {field: [old, new]} of what changed."""
    return _apply(workflow, carried_settings(document, defaults=defaults))


def _apply(workflow: Workflow, values: dict) -> dict:
    changes = {}
    for name, value in values.items():
        old = getattr(workflow, name)
        if old != value:
            changes[name] = [old, value]
            setattr(workflow, name, value)
    return changes
