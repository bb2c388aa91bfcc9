"""Conditional UPDATEs that move a run between statuses, so two workers never both win a move."""
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session

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
    result = session.execute(
        sa.update(Run)
        .where(Run.id == run_id, Run.status.in_([s.value for s in sources]), *where)
        .values(status=target.value, **values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def claim(session: Session, run_id: int, source: RunStatus, *columns, **values):
    """Move run `run_id` from `source` to running and return `columns` of it, or None if another claim won."""
    return session.execute(
        sa.update(Run)
        .where(Run.id == run_id, Run.status == source.value)
        .values(status=RunStatus.RUNNING.value, **values)
        .returning(*columns)
        .execution_options(synchronize_session=False)
    ).first()
