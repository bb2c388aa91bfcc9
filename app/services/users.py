"""Creating users and issuing API tokens."""
import re

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session

from app.models import ApiToken, User
from app.security import Role
from app.timeutil import utcnow

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")


class UserError(ValueError):
    """Bad input for a user; the message names the field."""


def create_user(session: Session, email: str, password: str, role: str, name: str = "") -> User:
    """Add a user with a salted password hash; raises UserError for a bad email, role or password."""
    email = email.strip().lower()
    if not EMAIL_RE.match(email):
        raise UserError(f"email: '{email}' is not an email address")
    if role not in {r.value for r in Role}:
        raise UserError(f"role: '{role}' is not a role; use one of {', '.join(r.value for r in Role)}")
    if len(password) < 8:
        raise UserError("password: must be at least 8 characters")
    if session.scalar(sa.select(User.id).where(User.email == email)):
        raise UserError(f"email: a user with email {email} already exists")
    user = User(email=email, role=role, name=name)
    user.set_password(password, current_app.config.get("PASSWORD_HASH_METHOD", "scrypt"))
    session.add(user)
    session.flush()
    return user


def find_user(session: Session, email: str) -> User | None:
    return session.scalar(sa.select(User).where(User.email == email.strip().lower()))


def issue_token(session: Session, user: User) -> str:
    """Create an API token for `user` and return it; only its hash is stored."""
    row, plain = ApiToken.issue(user)
    session.add(row)
    session.flush()
    return plain


def user_for_token(session: Session, token: str) -> User | None:
    """The active user a bearer token belongs to, or None."""
    row = session.scalar(sa.select(ApiToken).where(ApiToken.token_hash == ApiToken.hash(token)))
    if row is None or not row.user.active:
        return None
    row.last_used_at = utcnow()
    return row.user
