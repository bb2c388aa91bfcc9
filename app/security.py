"""Roles, the capabilities each role has, and loaders that hide what a user may not see."""
from enum import Enum
from functools import wraps

import sqlalchemy as sa
from flask import abort
from flask_login import current_user, login_required
from sqlalchemy.orm import Session

from app.models import Run, User, Workflow


class Role(str, Enum):
    VIEWER = "viewer"  # looks at workflows, runs and logs
    OPERATOR = "operator"  # also runs and cancels workflows
    MANAGER = "manager"  # also tunes published settings and schedules, replays runs
    ADMIN = "admin"  # everything, including drafts, publishing and users
    SUPPORT = "support"  # an operator who also sees technical log detail


class Capability(str, Enum):
    LIST_WORKFLOWS = "LIST_WORKFLOWS"
    VIEW_RUNS = "VIEW_RUNS"
    RUN_WORKFLOW = "RUN_WORKFLOW"
    CANCEL_RUN = "CANCEL_RUN"
    REPLAY_RUN = "REPLAY_RUN"
    APPROVE_STEP = "APPROVE_STEP"
    UPDATE_WORKFLOW = "UPDATE_WORKFLOW"
    PUBLISH_WORKFLOW = "PUBLISH_WORKFLOW"
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


def requires(capability: Capability):
    """View decorator: sign-in required, and 403 without `capability`."""

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapper(*args, **kwargs):
            if not can(current_user, capability):
                abort(403)
            return view(*args, **kwargs)

        return wrapper

    return decorator


def workflow_visible(workflow: Workflow, user: User) -> bool:
    """Drafts and disabled workflows are for admins; others see enabled, published, role-allowed ones."""
    if can(user, C.VIEW_DRAFTS):
        return True
    if not workflow.is_published or not workflow.enabled:
        return False
    return not workflow.allowed_roles or user.role in workflow.allowed_roles


def visible_workflows(session: Session, user: User, *criteria) -> list[Workflow]:
    """The workflows `user` may see (by the rule of workflow_visible), filtered by `criteria`, by name."""
    query = sa.select(Workflow).where(*criteria).order_by(Workflow.name)
    if not can(user, C.VIEW_DRAFTS):
        query = query.where(Workflow.state == "published", Workflow.enabled.is_(True))
    return [w for w in session.scalars(query) if workflow_visible(w, user)]


def visible_workflow_ids(session: Session, user: User) -> list[int]:
    """Ids of the workflows `user` may see, for filtering runs (workflows number in the hundreds, runs in millions)."""
    return [w.id for w in visible_workflows(session, user)]


def get_workflow_or_404(session: Session, key: str, user: User) -> Workflow:
    """Load a workflow by key, answering 404 when it does not exist or `user` may not see it."""
    workflow = session.scalar(sa.select(Workflow).where(Workflow.key == key))
    if workflow is None or not workflow_visible(workflow, user):
        abort(404)
    return workflow


def get_run_or_404(session: Session, run_id: int, user: User) -> Run:
    """Load a run, answering 404 when it does not exist or its workflow is hidden from `user`."""
    run = session.get(Run, run_id)
    if run is None or not workflow_visible(run.workflow, user):
        abort(404)
    return run
