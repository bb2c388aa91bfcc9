"""Roles, the capabilities each role has, and the one rule for which workflows a user may see."""
from enum import Enum

from app.models import User, Workflow
from app.vocabulary import Role, WorkflowState


class Capability(str, Enum):
    LIST_WORKFLOWS = "LIST_WORKFLOWS"
    VIEW_RUNS = "VIEW_RUNS"
    RUN_WORKFLOW = "RUN_WORKFLOW"
    CANCEL_RUN = "CANCEL_RUN"
    REPLAY_RUN = "REPLAY_RUN"
    APPROVE_STEP = "APPROVE_STEP"
    UPDATE_WORKFLOW = "UPDATE_WORKFLOW"  # tune a published workflow's settings (and schedule)
    PUBLISH_WORKFLOW = "PUBLISH_WORKFLOW"
    AUTHOR_WORKFLOW = "AUTHOR_WORKFLOW"  # create drafts, save versions, restore, clone, archive, set restrictions
    VIEW_DRAFTS = "VIEW_DRAFTS"
    VIEW_TECHNICAL_LOGS = "VIEW_TECHNICAL_LOGS"
    EXPORT_DATA = "EXPORT_DATA"
    MANAGE_USERS = "MANAGE_USERS"


C = Capability
_VIEW = {C.LIST_WORKFLOWS, C.VIEW_RUNS}
_OPERATE = _VIEW | {C.RUN_WORKFLOW, C.CANCEL_RUN, C.EXPORT_DATA}
ROLE_CAPABILITIES: dict[Role, frozenset[Capability]] = {
    Role.VIEWER: frozenset(_VIEW),
    Role.OPERATOR: frozenset(_OPERATE),
    Role.SUPPORT: frozenset(_OPERATE | {C.REPLAY_RUN, C.VIEW_TECHNICAL_LOGS}),
    Role.MANAGER: frozenset(_OPERATE | {C.REPLAY_RUN, C.APPROVE_STEP, C.UPDATE_WORKFLOW}),
    Role.ADMIN: frozenset(Capability),
}


def can(user, capability: Capability) -> bool:
    """Whether `user` (signed in or not) has `capability`."""
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    try:
        return capability in ROLE_CAPABILITIES[Role(user.role)]
    except ValueError:
        return False


def workflow_visible(workflow: Workflow, user: User) -> bool:
    """Drafts and disabled workflows are for admins; others see enabled, published, role-allowed ones. Reads only
    `state`, `published_version_id`, `enabled` and `allowed_roles`, so a row of those columns serves as well."""
    if can(user, C.VIEW_DRAFTS):
        return True
    published = workflow.state == WorkflowState.PUBLISHED and workflow.published_version_id is not None
    if not published or not workflow.enabled:
        return False
    return not workflow.allowed_roles or user.role in workflow.allowed_roles


def may_edit_definition(user, workflow: Workflow) -> bool:
    """Whether `user` may change the workflow's definition, configuration and restrictions (admins, draft or
    published)."""
    return can(user, C.AUTHOR_WORKFLOW)


def may_edit_settings(user, workflow: Workflow) -> bool:
    """Whether `user` may change the workflow's settings: admins always, managers once it is published (and while
    it is not archived)."""
    return may_edit_definition(user, workflow) or (
        can(user, C.UPDATE_WORKFLOW) and workflow.state == WorkflowState.PUBLISHED and workflow.archived_at is None
    )


def may_open_editor(user, workflow: Workflow) -> bool:
    """Whether the editor opens for `user` (the Edit action shows): whoever may change some part of it."""
    return may_edit_settings(user, workflow)
