"""Parsed workflow definitions, kept per process by version id.

A version never changes once saved (an edit saves a new version), so its definition is parsed once per process:
reading and parsing it was a round trip and a fifth of a short run's CPU in a worker, and hashing it for a
content-keyed cache was the same again on every start. An invalid definition raises DefinitionError and is not
kept, so every use says so.
"""
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.engine.definition import Definition, parse_definition
from app.engine.limits import BOUNDS
from app.models import WorkflowVersion

MAX_KEPT = 256  # definitions a process keeps; past that it starts again

_parsed: dict[int, Definition] = {}


def parsed(version_id: int, document: Callable[[], dict]) -> Definition:
    """The parsed definition of version `version_id`; `document()` reads it when it is not kept yet."""
    found = _parsed.get(version_id)
    if found is None:
        # A saved version was held to its workflow's max nodes when it was saved; running it checks only the ceiling.
        found = parse_definition(document(), max_nodes=BOUNDS["max_nodes"][1])
        if len(_parsed) >= MAX_KEPT:
            _parsed.clear()
        _parsed[version_id] = found
    return found


def of_version(session: Session, version_id: int) -> Definition:
    """The parsed definition of version `version_id`, read from the database only when it is not kept yet."""
    return parsed(version_id, lambda: session.scalar(
        sa.select(WorkflowVersion.definition).where(WorkflowVersion.id == version_id)))


def forget() -> None:
    """Drop what is kept: after a worker's warm-up, whose rolled-back version id SQLite may give out again, and
    between tests, whose emptied tables give out ids again (a real database never does)."""
    _parsed.clear()
