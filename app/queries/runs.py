"""Runs as people look for them: filtered, newest first, a page at a time, with a bounded count."""
from collections.abc import Iterator
import hashlib
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session, defer, selectinload

from app.engine.states import ACTIVE, FINISHED
from app.models import LogEntry, Run, Workflow, WorkflowVersion
from app.models.run import StepRun
from app.queries.csv import formula_safe, iso_utc, query_csv, seconds_between
from app.queries.filters import RunFilter

COUNT_CAP = 10_000


@dataclass
class RunPage:
    """One page of runs, newest first, and where the pages before and after it start."""

    runs: list[Run]
    older: int | None  # pass as ?before= for the next older page
    newer: int | None  # pass as ?after= for the next newer page


def _matching(f: RunFilter, workflow_ids: list[int]) -> sa.Select:
    """The runs `f` selects among the workflows `workflow_ids` (those the user may see)."""
    query = sa.select(Run).where(Run.workflow_id.in_(workflow_ids))
    if f.workflows or f.kinds:
        chosen = sa.select(Workflow.id).where(Workflow.id.in_(workflow_ids))
        if f.workflows:
            chosen = chosen.where(Workflow.key.in_(f.workflows))
        if f.kinds:
            chosen = chosen.where(Workflow.kind.in_(f.kinds))
        query = query.where(Run.workflow_id.in_(chosen))
    if f.statuses:
        query = query.where(Run.status.in_(f.statuses))
    if f.triggers:
        query = query.where(Run.trigger.in_(f.triggers))
    if f.queues:
        query = query.where(Run.queue.in_(f.queues))
    if f.versions:
        query = query.where(Run.version_id.in_(
            sa.select(WorkflowVersion.id).where(WorkflowVersion.workflow_id.in_(workflow_ids),
                                                WorkflowVersion.number.in_(f.versions))
        ))
    if f.key:
        # One list of ids from both indexes (runs.record_key, log_entries.record_key): an OR of the two would be
        # checked run by run along the whole table.
        carrying = sa.union(
            sa.select(Run.id).where(Run.record_key == f.key),
            sa.select(LogEntry.run_id).where(LogEntry.record_key == f.key),
        )
        query = query.where(Run.id.in_(carrying))
    since, until = f.window
    if since is not None:
        query = query.where(Run.queued_at >= since)
    if until is not None:
        query = query.where(Run.queued_at < until)
    return query


# What a list of runs loads: each run's version number (in one statement for the page), not the version's definition,
# and not the run's result or selected keys, which no list shows and which can be large.
LISTED = (selectinload(Run.version).load_only(WorkflowVersion.number), defer(Run.result), defer(Run.selected_keys))


def runs_page(session: Session, f: RunFilter, workflow_ids: list[int], finished_only: bool = False) -> RunPage:
    """A page of the runs `f` selects (only finished ones with `finished_only`), by keyset on the id."""
    query = _matching(f, workflow_ids).options(*LISTED)
    if finished_only:
        query = query.where(Run.status.in_([s.value for s in FINISHED]))
    if f.after is not None:
        rows = session.scalars(query.where(Run.id > f.after).order_by(Run.id.asc()).limit(f.limit + 1)).all()
        more_newer = len(rows) > f.limit
        runs = list(reversed(rows[: f.limit]))
        older = runs[-1].id if runs else None
        return RunPage(runs, older=older, newer=runs[0].id if runs and more_newer else None)
    if f.before is not None:
        query = query.where(Run.id < f.before)
    rows = session.scalars(query.order_by(Run.id.desc()).limit(f.limit + 1)).all()
    runs = rows[: f.limit]
    older = runs[-1].id if len(rows) > f.limit else None
    newer = runs[0].id if runs and f.before is not None else None
    return RunPage(runs, older=older, newer=newer)


def active_runs(session: Session, f: RunFilter, workflow_ids: list[int], limit: int = 100) -> list[Run]:
    """The runs `f` selects that are still pending, running or waiting, newest first."""
    query = _matching(f, workflow_ids).where(Run.status.in_([s.value for s in ACTIVE]))
    return session.scalars(query.options(*LISTED).order_by(Run.id.desc()).limit(limit)).all()


def count_runs(session: Session, f: RunFilter, workflow_ids: list[int], finished_only: bool = False) -> int:
    """How many runs `f` selects, counted up to COUNT_CAP + 1 (never an unbounded COUNT)."""
    query = _matching(f, workflow_ids).with_only_columns(Run.id)
    if finished_only:
        query = query.where(Run.status.in_([s.value for s in FINISHED]))
    return session.scalar(sa.select(sa.func.count()).select_from(query.limit(COUNT_CAP + 1).subquery()))


def queues_of(session: Session, workflow_ids: list[int]) -> list[str]:
    """The queues the visible workflows run on, for the queue filter."""
    return list(session.scalars(
        sa.select(Workflow.queue).where(Workflow.id.in_(workflow_ids)).distinct().order_by(Workflow.queue)
    ))


def export_query(f: RunFilter, workflow_ids: list[int]) -> sa.Select:
    """Every run `f` selects (no page), newest first, as the CSV's cells: text the database made safe and
    formatted (`app.queries.csv`), numbers, or NULL for empty. Workflow keys and queues (validated to start with a
    letter or digit), statuses and triggers (our own words) cannot start a formula."""
    return (
        _matching(f, workflow_ids)
        .with_only_columns(
            Run.id, Run.workflow_key, WorkflowVersion.number, Run.status,
            Run.trigger, formula_safe(Run.record_key), Run.queue, iso_utc(Run.queued_at),
            iso_utc(Run.started_at), iso_utc(Run.finished_at), seconds_between(Run.started_at, Run.finished_at),
            formula_safe(Run.error_code), formula_safe(Run.error_message), Run.replay_of_id,
        )
        .join(WorkflowVersion, WorkflowVersion.id == Run.version_id)
        .order_by(Run.id.desc())
    )


def export_csv(session: Session, f: RunFilter, workflow_ids: list[int]) -> Iterator[bytes]:
    """The rows of `export_query` as CSV lines, read lazily while the answer is sent (see `query_csv`)."""
    return query_csv(session, export_query(f, workflow_ids))


# What the run panel shows that can change while it is open (status, progress, a cancel request, a step scheduled,
# started, parked or finished): the panel's marker is made of these, read in one statement by `panel_glance`.
_MARKED_RUN_COLUMNS = (Run.status, Run.attempt, Run.progress_done, Run.progress_total, Run.cancel_requested_at,
                       Run.started_at, Run.finished_at, Run.error_code)


def panel_steps(run_id: int):
    """One row of aggregates over a run's step runs, for `panel_marker`."""
    return (
        sa.select(sa.func.count().label("steps"), sa.func.max(StepRun.id).label("last_step"),
                  sa.func.count(StepRun.started_at).label("steps_started"),
                  sa.func.count(StepRun.finished_at).label("steps_finished"),
                  sa.func.count(StepRun.resume_at).label("steps_parked"))
        .where(StepRun.run_id == run_id)
        .subquery()
    )


def panel_columns(steps) -> tuple:
    """The columns `panel_marker` reads (with `steps` from `panel_steps`), and the run's queue."""
    return (*_MARKED_RUN_COLUMNS, Run.queue, *steps.c)


def panel_marker(row, *extra) -> str:
    """A short token that changes whenever the run panel would show something new, from a row of `panel_columns`
    and `extra` (what else the panel depends on: the viewer, whether workers listen)."""
    marked = [c.key for c in _MARKED_RUN_COLUMNS] + ["steps", "last_step", "steps_started", "steps_finished",
                                                     "steps_parked"]
    parts = (*(row._mapping[name] for name in marked), *extra)
    return hashlib.blake2b(repr(parts).encode(), digest_size=8).hexdigest()
