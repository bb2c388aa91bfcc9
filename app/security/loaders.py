"""Loaders that hide what a user may not see: missing and invisible things both answer 404."""
import sqlalchemy as sa
from flask import abort
from sqlalchemy.orm import Session, joinedload

from app.models import Run, User, Workflow
from app.security.policy import Capability, can, workflow_visible
from app.vocabulary import WorkflowState


def visible_workflows(session: Session, user: User, *criteria, options=()) -> list[Workflow]:
    """The workflows `user` may see (by the rule of workflow_visible), filtered by `criteria`, by name; `options`
    are loader options (what to load with them)."""
    query = _narrowed(sa.select(Workflow).where(*criteria).options(*options).order_by(Workflow.name), user)
    return [w for w in session.scalars(query) if workflow_visible(w, user)]


def visible_workflow_ids(session: Session, user: User) -> list[int]:
    """Ids of the workflows `user` may see, for filtering runs (workflows number in the hundreds, runs in millions):
    from the columns workflow_visible reads, without loading a workflow."""
    rows = session.execute(_narrowed(
        sa.select(Workflow.id, Workflow.state, Workflow.published_version_id, Workflow.enabled, Workflow.allowed_roles),
        user,
    ))
    return [row.id for row in rows if workflow_visible(row, user)]


def _narrowed(query: sa.Select, user: User) -> sa.Select:
    """`query` on workflows, narrowed in SQL to the published and enabled ones unless `user` sees drafts (the roles
    a workflow allows are checked on each row, by workflow_visible)."""
    if can(user, Capability.VIEW_DRAFTS):
        return query
    return query.where(Workflow.state == WorkflowState.PUBLISHED.value, Workflow.enabled.is_(True))


def get_workflow_or_404(session: Session, key: str, user: User) -> Workflow:
    """Load a workflow by key, answering 404 when it does not exist or `user` may not see it."""
    workflow = session.scalar(sa.select(Workflow).where(Workflow.key == key))
    if workflow is None or not workflow_visible(workflow, user):
        abort(404)
    return workflow


def run_glance_or_404(session: Session, run_id: int, user: User, *columns, join=None) -> sa.Row:
    """`columns` of a run, with what its workflow's visibility needs, in one statement and without ORM objects (for
    polls, which mostly answer 204 and never need the whole run), answering 404 like get_run_or_404. `join` adds
    a one-row subquery the columns come from."""
    query = (sa.select(Workflow.state, Workflow.published_version_id, Workflow.enabled, Workflow.allowed_roles,
                       *columns)
             .join(Run, Run.workflow_id == Workflow.id).where(Run.id == run_id))
    if join is not None:
        query = query.join(join, sa.true())
    row = session.execute(query).first()
    if row is None or not workflow_visible(row, user):
        abort(404)
    return row


def get_run_or_404(session: Session, run_id: int, user: User) -> Run:
    """Load a run, answering 404 when it does not exist or its workflow is hidden from `user`."""
    run = session.get(Run, run_id, options=[joinedload(Run.workflow)])
    if run is None or not workflow_visible(run.workflow, user):
        abort(404)
    return run
