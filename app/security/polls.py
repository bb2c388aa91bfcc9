"""The quick answer to a poll that finds nothing new, in one statement and one round trip.

A live run page polls its panel and its log tail every second, and almost every poll finds nothing new. The regular
way to answer one loads the user through flask-login (a statement and ORM objects), reads what the poll compares
(another), and wraps both in a transaction (BEGIN and ROLLBACK). Here a single statement, outside any transaction,
reads the user the session cookie names together with the run, its workflow's visibility and what the poll
compares.

The quick path only ever answers "unchanged": it returns a row when the session's user is active and holds the
cookie's current session token (the user loader's rule, with the same constant-time comparison), has the
capability, and may see the run's workflow. Anything else (no user in the session, a remember-me cookie alone, a
token ended by signing out, a missing or hidden run, a missing capability) returns None, and the caller takes the
regular path, which loads the user through flask-login and decides: redirect to sign in, 403, 404 or a render.
"""
import hmac
from types import SimpleNamespace

import sqlalchemy as sa
from flask import session

from app.database import autocommit
from app.extensions import db
from app.models import LogEntry, Run, User, Workflow
from app.security.policy import Capability, can, workflow_visible

RUN_ID = sa.bindparam("run_id", type_=Run.__table__.c.id.type)
USER_ID = sa.bindparam("user_id", type_=User.__table__.c.id.type)
AFTER = sa.bindparam("after", type_=LogEntry.__table__.c.id.type)  # a log line id, for a tail's poll
SESSION_USER_KEY = "_user_id"  # where flask-login keeps the signed-in user's get_id() in the session
MAX_ID_DIGITS = 18


def poll_statement(*columns, join=None) -> sa.Select:
    """The statement `quick_glance` executes: the user `USER_ID` (role, session token, active), the run `RUN_ID`'s
    workflow visibility and `columns` (which may use RUN_ID, and may come from `join`, a one-row subquery). Build
    it once, at import: a statement built once is compiled and cache-keyed once."""
    query = (sa.select(User.role, User.session_token, User.active, Workflow.state, Workflow.published_version_id,
                       Workflow.enabled, Workflow.allowed_roles, *columns)
             .select_from(User)
             .join(Run, Run.id == RUN_ID)
             .join(Workflow, Workflow.id == Run.workflow_id)
             .where(User.id == USER_ID))
    if join is not None:
        query = query.join(join, sa.true())
    return query


def session_user() -> tuple[int, str] | None:
    """The user id and session token the session cookie carries, or None."""
    cookie_id = session.get(SESSION_USER_KEY)
    if not isinstance(cookie_id, str):
        return None
    user_id, _, token = cookie_id.partition(":")
    if not user_id.isdigit() or len(user_id) > MAX_ID_DIGITS or not token:
        return None
    return int(user_id), token


def quick_glance(statement: sa.Select, capability: Capability, **params) -> tuple[sa.Row, SimpleNamespace] | None:
    """The row of `statement` (from `poll_statement`) and the user it read (id and role), when the session's user is
    current, has `capability` and may see the run; None to take the regular path."""
    named = session_user()
    if named is None:
        return None
    user_id, token = named
    # Autocommit: one statement needs no transaction, so no BEGIN before it and no ROLLBACK when the connection
    # goes back to the pool. Each statement reads committed data either way.
    with autocommit(db.engine) as connection:
        row = connection.execute(statement, {"user_id": user_id, **params}).first()
    if row is None or not row.active or not hmac.compare_digest(row.session_token.encode(), token.encode()):
        return None
    user = SimpleNamespace(id=user_id, role=row.role, is_authenticated=True)
    if not can(user, capability) or not workflow_visible(row, user):
        return None
    return row, user
