"""Retention: finished runs older than a cutoff are deleted with their step runs and job log (H8).

This is the only code that deletes runs. Active runs (pending, running, waiting, waiting for approval)
are never deleted, whatever their age. A run's age is when it finished, or, for a finished run that
has no finish time, when it was queued.

Nothing here is one big transaction: runs are taken `batch` at a time, their log lines are deleted
`chunk` lines per transaction, then their step runs and the runs themselves in one short transaction.
Every statement repeats the "finished and old" condition, and the last transaction locks the runs
first (PostgreSQL; SQLite lets one writer in at a time), so a run retried meanwhile is left alone.
A newer run that replays a deleted one keeps its place with `replay_of_id` set to NULL.
"""
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.engine.states import FINISHED
from app.models import LogEntry, Run, StepRun
from app.timeutil import utcnow

BATCH = 1000  # runs per transaction
CHUNK = 10_000  # log lines per transaction


@dataclass
class PruneReport:
    """What a prune deleted (or, as a dry run, would delete): runs finished before `cutoff`."""

    cutoff: datetime
    dry_run: bool = False
    runs: int = 0
    step_runs: int = 0
    log_lines: int = 0


def prunable(cutoff: datetime):
    """The condition on runs that retention deletes: finished, and finished (or queued) before `cutoff`."""
    # Spelled as two ranges of ix_runs_status_finished_at (NULL is a key too), so that SQLite and PostgreSQL
    # read only old runs, even without table statistics.
    finished = Run.status.in_(sorted(status.value for status in FINISHED))
    return sa.or_(
        sa.and_(finished, Run.finished_at < cutoff),
        sa.and_(finished, Run.finished_at.is_(None), Run.queued_at < cutoff),
    )


def prune_runs(
    session: Session, older_than: timedelta, *, dry_run: bool = False, batch: int = BATCH, chunk: int = CHUNK
) -> PruneReport:
    """Delete finished runs older than `older_than`, with their step runs and log lines, committing batch
    by batch (so this verb commits, unlike most); with `dry_run`, count what would be deleted instead."""
    if older_than <= timedelta(0):
        raise ValueError("older_than must be positive")
    report = PruneReport(cutoff=utcnow() - older_than, dry_run=dry_run)
    if dry_run:
        _count(session, report)
        return report
    while True:
        run_ids = session.scalars(sa.select(Run.id).where(prunable(report.cutoff)).limit(batch)).all()
        session.commit()
        if not run_ids:
            return report
        report.log_lines += _delete_log_lines(session, run_ids, report.cutoff, chunk)
        _delete_runs(session, run_ids, report)
        session.commit()


def _still_prunable(run_ids: list[int], cutoff: datetime):
    return sa.select(Run.id).where(Run.id.in_(run_ids), prunable(cutoff)).scalar_subquery()


def _delete_log_lines(session: Session, run_ids: list[int], cutoff: datetime, chunk: int) -> int:
    """Delete the runs' log lines `chunk` at a time, each chunk in a transaction of its own."""
    deleted = 0
    while True:
        lines = (
            sa.select(LogEntry.id)
            .where(LogEntry.run_id.in_(_still_prunable(run_ids, cutoff)))
            .limit(chunk)
            .scalar_subquery()
        )
        count = session.execute(
            sa.delete(LogEntry).where(LogEntry.id.in_(lines)), execution_options={"synchronize_session": False}
        ).rowcount
        session.commit()
        deleted += count
        if count < chunk:
            return deleted


def _delete_runs(session: Session, run_ids: list[int], report: PruneReport) -> None:
    """Delete the runs that are still prunable with what is left of them, children first."""
    locked = session.scalars(
        sa.select(Run.id).where(Run.id.in_(run_ids), prunable(report.cutoff)).with_for_update()
    ).all()
    if not locked:
        return
    # Children first, by hand: the schema's ON DELETE actions are not relied on. The condition is repeated
    # because SQLite takes its write lock only at the first DELETE, after the read above.
    still = _still_prunable(locked, report.cutoff)
    options = {"synchronize_session": False}
    report.log_lines += session.execute(
        sa.delete(LogEntry).where(LogEntry.run_id.in_(still)), execution_options=options
    ).rowcount
    report.step_runs += session.execute(
        sa.delete(StepRun).where(StepRun.run_id.in_(still)), execution_options=options
    ).rowcount
    # Replays of these runs stay, without their link (what ON DELETE SET NULL would do, done here too).
    session.execute(
        sa.update(Run).where(Run.replay_of_id.in_(still)).values(replay_of_id=None), execution_options=options
    )
    report.runs += session.execute(
        sa.delete(Run).where(Run.id.in_(locked), prunable(report.cutoff)), execution_options=options
    ).rowcount


def _count(session: Session, report: PruneReport) -> None:
    """Fill the report with what a prune at its cutoff would delete, deleting nothing."""
    old = sa.select(Run.id).where(prunable(report.cutoff)).scalar_subquery()
    report.runs = session.scalar(sa.select(sa.func.count()).select_from(Run).where(prunable(report.cutoff)))
    report.step_runs = session.scalar(sa.select(sa.func.count()).select_from(StepRun).where(StepRun.run_id.in_(old)))
    report.log_lines = session.scalar(sa.select(sa.func.count()).select_from(LogEntry).where(LogEntry.run_id.in_(old)))
    session.rollback()
