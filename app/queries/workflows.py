"""Workflows as people look for them: the list (published, drafts or archived; searched and filtered by type), a
workflow's versions and the diff between two, and its audit log a page at a time."""
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

import sqlalchemy as sa
from sqlalchemy.orm import Session, defer, selectinload

from app.engine.diff import DefinitionDiff, diff_definitions
from app.models import AuditEvent, Run, User, Workflow, WorkflowVersion
from app.models.workflow import MAX_VERSION_NUMBER
from app.security import Capability, can, visible_workflows
from app.services.audit import AuditEntity
from app.vocabulary import KINDS, WorkflowState

AUDIT_PAGE = 50


class ListState(str, Enum):
    """Which workflows the list shows; only admins switch away from the published ones."""

    PUBLISHED = "published"  # published and not archived (everything a non-admin sees)
    DRAFTS = "drafts"  # never published, not archived
    ARCHIVED = "archived"  # archived ones, drafts or not

    @property
    def label(self) -> str:
        return self.value.capitalize()


def list_state(raw: str | None, user: User) -> ListState:
    """The list a `?state=` asks for; anything else, or a user who may not see drafts, gets the published one."""
    if not can(user, Capability.VIEW_DRAFTS):
        return ListState.PUBLISHED
    try:
        return ListState(raw or ListState.PUBLISHED.value)
    except ValueError:
        return ListState.PUBLISHED


def workflow_list(session: Session, user: User, state: ListState, q: str = "", kind: str = "") -> list[Workflow]:
    """The workflows of one list that `user` may see, by name, searched by name or key and filtered by type."""
    criteria = []
    if q:
        pattern = f"%{q.lower()}%"
        criteria.append(sa.or_(sa.func.lower(Workflow.name).like(pattern), Workflow.key.like(pattern)))
    if kind in KINDS:
        criteria.append(Workflow.kind == kind)
    if state is ListState.ARCHIVED:
        criteria.append(Workflow.archived_at.is_not(None))
    else:
        criteria.append(Workflow.archived_at.is_(None))
        drafts = state is ListState.DRAFTS
        criteria.append((Workflow.state == WorkflowState.DRAFT.value) if drafts
                        else (Workflow.state == WorkflowState.PUBLISHED.value))
    # Each row shows its live version's number: loaded for all rows in one statement, without the definitions.
    live = selectinload(Workflow.published_version).load_only(WorkflowVersion.number)
    return visible_workflows(session, user, *criteria, options=(live,))


def latest_runs(session: Session, workflows: list[Workflow]) -> dict[int, int]:
    """The newest run id of each workflow that has run (the list's Logs action and last-run time), read at the end of
    its part of the (workflow_id, id) index. PostgreSQL plans both `max(id)` and `ORDER BY id DESC LIMIT 1` as a
    backward walk of the primary key that filters workflow_id, which reads most of the table for a workflow with no
    recent runs (a second each at a million runs); the row comparison can only be answered by the (workflow_id, id)
    index."""
    if not workflows:
        return {}
    newest = (
        sa.select(Run.id)
        .where(Run.workflow_id == Workflow.id, sa.tuple_(Run.workflow_id, Run.id) < sa.tuple_(Workflow.id + 1, 0))
        .order_by(Run.workflow_id.desc(), Run.id.desc())
        .limit(1)
        .correlate(Workflow)
        .scalar_subquery()
    )
    rows = session.execute(sa.select(Workflow.id, newest).where(Workflow.id.in_([w.id for w in workflows])))
    return {workflow_id: run_id for workflow_id, run_id in rows if run_id}


def last_run_times(session: Session, latest: dict[int, int]) -> dict[int, datetime]:
    """When each workflow was last run, from its newest run (`latest_runs`)."""
    if not latest:
        return {}
    rows = session.execute(sa.select(Run.workflow_id, Run.queued_at).where(Run.id.in_(list(latest.values()))))
    return {workflow_id: when for workflow_id, when in rows}


@dataclass(frozen=True)
class Newest:
    """A workflow's newest saved version, for the list: its number and whether it is the live one."""

    number: int
    live: bool

    @property
    def label(self) -> str:
        return f"v{self.number}"


def newest_versions(session: Session, workflows: list[Workflow]) -> dict[int, Newest]:
    """Each workflow's newest version number and whether it is live, in one statement (no definitions loaded)."""
    if not workflows:
        return {}
    by_id = {w.id: w for w in workflows}
    rows = session.execute(
        sa.select(WorkflowVersion.workflow_id, sa.func.max(WorkflowVersion.number))
        .where(WorkflowVersion.workflow_id.in_(list(by_id))).group_by(WorkflowVersion.workflow_id))
    found = {}
    for workflow_id, number in rows:
        live = by_id[workflow_id].published_version
        found[workflow_id] = Newest(number, live is not None and live.number == number)
    return found


def versions_of(session: Session, workflow: Workflow) -> list[WorkflowVersion]:
    """The workflow's versions, newest first, with their authors; not their definitions (every save is a version, and
    a workflow saved hundreds of times would parse them all for a list that shows none)."""
    return session.scalars(
        sa.select(WorkflowVersion).where(WorkflowVersion.workflow_id == workflow.id)
        .options(selectinload(WorkflowVersion.author), defer(WorkflowVersion.definition))
        .order_by(WorkflowVersion.number.desc())
    ).all()


def version_numbers(session: Session, workflow: Workflow) -> list[int]:
    """The numbers of a workflow's versions, oldest first, for a version filter (not the versions' definitions)."""
    return list(session.scalars(sa.select(WorkflowVersion.number).where(WorkflowVersion.workflow_id == workflow.id)
                                .order_by(WorkflowVersion.number)))


def version_of(session: Session, workflow: Workflow, number: int) -> WorkflowVersion | None:
    """The workflow's version `number`, or None (also for a number no version column could hold)."""
    if not 1 <= number <= MAX_VERSION_NUMBER:
        return None
    return session.scalar(sa.select(WorkflowVersion).where(WorkflowVersion.workflow_id == workflow.id,
                                                           WorkflowVersion.number == number))


@dataclass(frozen=True)
class VersionDiff:
    """A version against another (the one before it, or the live one)."""

    version: WorkflowVersion
    base: WorkflowVersion | None  # None: the first version, diffed from nothing
    diff: DefinitionDiff


def compare_versions(session: Session, workflow: Workflow, number: int, against: str = "previous"
                     ) -> VersionDiff | None:
    """Version `number` against the version before it (`against="previous"`) or the live one (`"live"`); None when
    the workflow has no such version."""
    version = version_of(session, workflow, number)
    if version is None:
        return None
    if against == "live" and workflow.published_version is not None:
        base = workflow.published_version
    else:
        base = session.scalar(sa.select(WorkflowVersion).where(
            WorkflowVersion.workflow_id == workflow.id, WorkflowVersion.number < number)
            .order_by(WorkflowVersion.number.desc()).limit(1))
    diff = diff_definitions(base.definition if base else None, version.definition,
                            base.label if base else "nothing", version.label)
    return VersionDiff(version, base, diff)


@dataclass
class AuditPage:
    events: list[AuditEvent]
    older: int | None  # pass as ?before= for the next older page


def audit_page(session: Session, workflow: Workflow, before: int | None = None, limit: int = AUDIT_PAGE
               ) -> AuditPage:
    """The workflow's audit rows, newest first, `limit` at a time (keyset on id)."""
    query = (sa.select(AuditEvent)
             .where(AuditEvent.entity_type == AuditEntity.WORKFLOW.value, AuditEvent.entity_id == workflow.id)
             .order_by(AuditEvent.id.desc()).limit(limit + 1))
    if before is not None:
        query = query.where(AuditEvent.id < before)
    events = session.scalars(query).all()
    older = events[limit - 1].id if len(events) > limit else None
    return AuditPage(events[:limit], older)
