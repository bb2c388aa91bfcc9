"""Users: creating them, signing in, passwords, sessions, deactivation, and API tokens."""
import re
from functools import lru_cache

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from app.models import ApiToken, User
from app.services.errors import Invalid
from app.timeutil import utcnow
from app.vocabulary import ROLES

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")


MIN_PASSWORD = 8


def create_user(session: Session, email: str, password: str, role: str, name: str = "") -> User:
    """Add a user with a salted password hash; raises Invalid for a bad email, role or password."""
    email = email.strip().lower()
    if not EMAIL_RE.match(email):
        raise Invalid(f"'{email}' is not an email address", field="email")
    if role not in ROLES:
        raise Invalid(f"'{role}' is not a role; use one of {', '.join(ROLES)}", field="role")
    if len(password) < MIN_PASSWORD:
        raise Invalid(f"must be at least {MIN_PASSWORD} characters", field="password")
    if session.scalar(sa.select(User.id).where(User.email == email)):
        raise Invalid(f"a user with email {email} already exists", field="email")
    user = User(email=email, role=role, name=name)
    user.set_password(password, _hash_method())
    session.add(user)
    session.flush()
    return user


def _hash_method() -> str:
    return current_app.config.get("PASSWORD_HASH_METHOD", "scrypt")


@lru_cache(maxsize=4)
def _dummy_hash(method: str) -> str:
    return generate_password_hash("no account has this password", method=method)


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The user whose email and password these are, or None.

    An unknown email costs the same hash check as a wrong password, so timing does not tell which
    accounts exist. A deactivated user is returned; the caller refuses them with a message.
    """
    user = find_user(session, email)
    if user is None:
        check_password_hash(_dummy_hash(_hash_method()), password)
        return None
    return user if user.check_password(password) else None


def change_password(session: Session, user: User, current: str, new: str, confirm: str) -> None:
    """Set a new password after checking the current one; every existing session of the user ends."""
    if not user.check_password(current):
        raise Invalid("is not your current password", field="current_password")
    if len(new) < MIN_PASSWORD:
        raise Invalid(f"must be at least {MIN_PASSWORD} characters", field="new_password")
    if new != confirm:
        raise Invalid("does not match the new password", field="confirm_password")
    user.set_password(new, _hash_method())


def set_password(session: Session, user: User, password: str) -> None:
    """Set a user's password (an administrator's reset); every existing session of the user ends."""
    if len(password) < MIN_PASSWORD:
        raise Invalid(f"must be at least {MIN_PASSWORD} characters", field="password")
    user.set_password(password, _hash_method())


def end_sessions(user: User) -> None:
    """Sign `user` out everywhere: every session and remember-me cookie issued so far stops working."""
    user.end_sessions()


def set_active(user: User, active: bool) -> None:
    """Deactivate (every session ends, API tokens stop working) or reactivate a user."""
    user.active = active
    if not active:
        user.end_sessions()


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
