"""Changing a run's status: one conditional move, the job log line that says so and, when someone (or a process
acting for nobody) decided it, the audit row.

The engine's own progress (claimed, parked, failed, completed, cancelled between steps) moves through here
too, from the journal, without an audit row: each run would otherwise write one per step it takes, and the
job log and the step runs already tell that story. Audit rows are for decisions taken from outside a walk:
a person's cancel, a run ended because its worker was lost, and (soon) retries, replays and approvals.
"""
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.engine.states import RunStatus, sources_of
from app.models import LogEntry, Run
from app.services.audit import Actor, AuditAction, AuditEntity, record
from app.services.execution.claims import move
from app.vocabulary import LogLevel

ATTEMPTS = 3  # reads of the current status before giving up on a run that keeps moving under us


@dataclass(frozen=True)
class StatusChange:
    """What a status change did: the run's status before and after (equal when it did not move)."""

    run_id: int
    old: RunStatus
    new: RunStatus

    @property
    def changed(self) -> bool:
        return self.old != self.new


def change_status(
    session: Session,
    run_id: int,
    target: RunStatus,
    *,
    only_from: Iterable[RunStatus] | None = None,
    where: Iterable = (),
    actor: Actor | None = None,
    action: AuditAction | None = None,
    message: str | None = None,
    level: LogLevel = LogLevel.INFO,
    **values,
) -> StatusChange:
    """Move run `run_id` to `target` from one of `only_from` (default: every legal source), setting `values`.

    When it moved: logs `message` at `level` and, with an `action`, adds an audit row for `actor`. When it
    did not (another process won, or the run is elsewhere), nothing is written and the change says where
    the run is. Nothing is committed: the caller owns the transaction.
    """
    sources = sources_of(target) if only_from is None else sources_of(target) & frozenset(only_from)
    where = tuple(where)
    old = None
    for _ in range(ATTEMPTS):
        if len(sources) == 1:
            (candidate,) = sources
        else:
            # Several sources: read which one the run is in, so the change can say where it came from.
            candidate = _status(session, run_id)
            if candidate is None or candidate not in sources:
                return StatusChange(run_id, candidate or target, candidate or target)
        if move(session, run_id, target, only_from=[candidate], where=where, **values):
            old = candidate
            break
        if len(sources) == 1:
            break
    if old is None:
        now = _status(session, run_id) or target
        return StatusChange(run_id, now, now)
    change = StatusChange(run_id, old, target)
    if message:
        session.add(LogEntry.line(run_id, level, message))
    if action is not None:
        changes = {"status": [old.value, target.value]}
        if "error_code" in values:
            changes["error_code"] = [None, values["error_code"]]
        record(session, actor, AuditEntity.RUN, run_id, action, changes)
    return change


def note(session: Session, run_id: int, *, actor: Actor, action: AuditAction, message: str, changes: dict,
         level: LogLevel = LogLevel.INFO) -> None:
    """Log and audit something done to a run that does not change its status (a cancel request)."""
    session.add(LogEntry.line(run_id, level, message))
    record(session, actor, AuditEntity.RUN, run_id, action, changes)


def _status(session: Session, run_id: int) -> RunStatus | None:
    value = session.scalar(sa.select(Run.status).where(Run.id == run_id))
    return None if value is None else RunStatus(value)
