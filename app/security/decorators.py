"""View decorators that turn away people whose role lacks a capability."""
from functools import wraps

from flask import abort
from flask_login import current_user, login_required

from app.security.policy import Capability, can


def requires(capability: Capability):
    """View decorator: sign-in required, and 403 without `capability`."""

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapper(*args, **kwargs):
            if not can(current_user, capability):
                abort(403)
            return view(*args, **kwargs)

        return wrapper

    return decorator
