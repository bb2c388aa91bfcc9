"""Enqueue jobs only after the transaction that created their rows has committed.

A worker must never pick up a run that is not in the database yet, and a rolled-back run must
never be enqueued. Services register the enqueue; the caller's commit fires it.
"""
import logging
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)
_KEY = "flowdesk_after_commit"


def after_commit(session: Session, action: Callable[[], None]) -> None:
    """Run `action` once the session's current transaction commits (dropped on rollback)."""
    session.info.setdefault(_KEY, []).append(action)


def _fire(session: Session) -> None:
    actions = session.info.pop(_KEY, [])
    for action in actions:
        try:
            action()
        except Exception:  # the row is committed; the reconciler re-enqueues pending runs
            log.exception("after-commit action failed")


def _drop(session: Session, *args) -> None:
    session.info.pop(_KEY, None)


def install() -> None:
    """Hook the after-commit actions into every SQLAlchemy session (idempotent)."""
    if not sa.event.contains(Session, "after_commit", _fire):
        sa.event.listen(Session, "after_commit", _fire)
        sa.event.listen(Session, "after_soft_rollback", _drop)
