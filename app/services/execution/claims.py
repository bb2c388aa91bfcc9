"""Conditional UPDATEs that move a run between statuses, so two workers never both win a move.

Every move names the statuses it may leave in its WHERE clause; a late or duplicate signal changes nothing.
"""
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.database import send_alone
from app.engine.states import RunStatus, sources_of
from app.models.run import Run


def move(
    session: Session,
    run_id: int,
    target: RunStatus,
    *,
    only_from: Iterable[RunStatus] | None = None,
    where: Iterable = (),
    **values,
) -> bool:
    """Move run `run_id` to `target` if its current status allows it; returns whether this call moved it.

    The WHERE clause carries the legal source statuses (and any extra `where` criteria), so a late or
    duplicate signal changes nothing.
    """
    sources = sources_of(target)
    if only_from is not None:
        sources = sources & frozenset(only_from)
    where = tuple(where)
    if where or any(isinstance(value, sa.ClauseElement) for value in values.values()):
        statement, params = _move_statement_with(run_id, target, sources, where, values), {}
    else:
        statement, params = _move_statement(target, frozenset(sources), tuple(sorted(values))), {"run_id": run_id,
                                                                                                   **values}
    return _execute(session, statement, params).rowcount == 1


def _move_statement_with(run_id: int, target: RunStatus, sources, where: tuple, values: dict) -> sa.Update:
    """A move with criteria or SQL values of its own, built for this call."""
    return (
        sa.update(Run.__table__)
        .where(Run.id == run_id, on_the_row(Run.status.in_([s.value for s in sources])), *where)
        .values(status=target.value, **values)
    )


@lru_cache(maxsize=64)
def _move_statement(target: RunStatus, sources: frozenset[RunStatus], keys: tuple[str, ...]) -> sa.Update:
    """A move that sets `keys` to plain values, built once per shape (the journal moves a run at the end of every
    walk)."""
    columns = Run.__table__.c
    return (
        sa.update(Run.__table__)
        .where(columns.id == sa.bindparam("run_id", type_=columns.id.type),
               on_the_row(columns.status.in_(sorted(s.value for s in sources))))
        .values(status=target.value, **{key: sa.bindparam(key, type_=columns[key].type) for key in keys})
    )


def _execute(session: Session | sa.Connection, statement: sa.Executable, params: dict) -> sa.CursorResult:
    """Execute a Core UPDATE of runs in the session's transaction, after flushing what the session holds (as the
    session's own execute would): the ORM's bulk UPDATE machinery adds nothing to a statement that synchronises no
    objects, and cost more than the statement on SQLite."""
    if isinstance(session, sa.Connection):
        return session.execute(statement, params)
    if session.autoflush:
        session.flush()
    return session.connection().execute(statement, params)


def on_the_row(condition):
    """`condition` as a check on the row the primary key found, never as the way to it: in a statement that also names
    the run's id, PostgreSQL can then only use the primary key. Without table statistics (a new database, a burst
    before the first ANALYZE) a cached plan that tied a status index with the primary key walked every run of that
    status for each claim: a claim cost more the more runs were pending."""
    return condition.is_(sa.true())


@dataclass(frozen=True)
class RunSnapshot:
    """The columns of a run the executor reads, returned by the claim itself."""

    id: int
    version_id: int
    attempt: int
    params: dict
    cursor: str | None
    trigger: str
    trigger_detail: str
    queue: str
    progress_done: int
    context: dict | None
    record_key: str | None
    job_timeout_seconds: int | None = None
    max_runtime_seconds: int | None = None
    max_actions: int | None = None
    executed_seconds: float = 0.0
    actions_taken: int = 0


_SNAPSHOT_COLUMNS = (
    Run.id, Run.version_id, Run.attempt, Run.params, Run.cursor, Run.trigger, Run.trigger_detail, Run.queue,
    Run.progress_done, Run.context, Run.record_key, Run.job_timeout_seconds, Run.max_runtime_seconds, Run.max_actions,
    Run.executed_seconds, Run.actions_taken,
)


def claim_run(session: Session | sa.Connection | sa.Engine, run_id: int, source: RunStatus, *,
              now: datetime | None = None, starting: bool = False) -> RunSnapshot | None:
    """Move run `run_id` from `source` to running and return what the executor needs of it, or None if another claim
    won (or the run left `source`). With `now`, the claim is the run's first heartbeat and, when `starting`, its start
    (a run that already has one keeps it: a retried step does). Given an engine (PostgreSQL), the claim is sent alone,
    outside any transaction."""
    statement, params = _claim_statement(source, now is not None, starting), {"run_id": run_id, "now": now}
    if isinstance(session, sa.Engine):
        row = send_alone(session, statement, params)
        return None if row is None else RunSnapshot(**row)
    row = _execute(session, statement, params).first()
    return None if row is None else RunSnapshot(**row._asdict())


@lru_cache(maxsize=8)
def _claim_statement(source: RunStatus, beat: bool, starting: bool) -> sa.Update:
    """The claim's UPDATE, built once per shape: a worker claims a run per job."""
    now = sa.bindparam("now", type_=Run.__table__.c.heartbeat_at.type)
    values = {"status": RunStatus.RUNNING.value}
    if beat:
        values["heartbeat_at"] = now
    if starting:
        values["started_at"] = sa.func.coalesce(Run.started_at, now)
    return (
        sa.update(Run)
        .where(Run.id == sa.bindparam("run_id", type_=Run.__table__.c.id.type), on_the_row(Run.status == source.value))
        .values(**values)
        .returning(*_SNAPSHOT_COLUMNS)
        .execution_options(synchronize_session=False)
    )
