"""HTTP errors as the caller reads them: JSON `{"error": ..., "fields": {...}}` under /api/, a small fragment for
htmx requests, a page elsewhere. Services raise the ServiceError family; this is the one place that gives each
its status."""
import time
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Flask, Response, current_app, flash, jsonify, redirect, render_template, request
from flask_limiter import RateLimitExceeded
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from app.database import is_unique_violation
from app.extensions import db, htmx, limiter
from app.services.errors import Conflict, Invalid, ServiceError
from app.web.protection import same_origin

API_PREFIX = "/api/"


def init_app(app: Flask) -> None:
    """Answer every HTTP error (400, 403, 404, 405, 413, ...) as JSON for the API and as a page for people."""
    app.register_error_handler(HTTPException, render_http_error)
    app.register_error_handler(ServiceError, render_service_error)
    app.register_error_handler(RateLimitExceeded, render_rate_limited)
    app.register_error_handler(sa.exc.IntegrityError, render_write_collision)


def is_api_request() -> bool:
    """Whether the request is for the JSON API, even one that matched no route."""
    return request.path.startswith(API_PREFIX)


def json_error(status: int, message: str, fields: dict | None = None, headers=()) -> Response:
    """The API's error answer: a message, and what is wrong with each named field."""
    response = jsonify({"error": message, "fields": fields or {}})
    response.status_code = status
    response.headers.extend(headers)
    return response


def is_panel_request() -> bool:
    """Whether htmx asked for a piece of a page (a panel, a table, a log tail) rather than a whole page.

    A history restore asks for the whole page, and a boosted link or form swaps the whole body: both get the page.
    """
    return bool(htmx) and not htmx.history_restore_request and not htmx.boosted


def render_http_error(exc: HTTPException):
    """JSON for the API, a small fragment for an htmx panel, the error page for people; keeps headers such as
    Allow and Retry-After."""
    headers = [(name, value) for name, value in exc.get_headers() if name.lower() != "content-type"]
    message = _too_large_message() if isinstance(exc, RequestEntityTooLarge) else exc.description or exc.name
    if is_api_request():
        return json_error(exc.code, message, getattr(exc, "fields", None), headers)
    if exc.code >= 500:
        return exc
    if is_panel_request():
        # htmx 2 swaps no 4xx answer by default (its responseHandling marks them errors), so the panel stays as it
        # was; a page that opts in to swapping errors gets this one line, never the whole error page.
        return render_template("_error_fragment.html", error=exc, message=message), exc.code, headers
    return render_template("error.html", error=exc, message=message), exc.code, headers


class _Refusal:
    """What the error templates read of an error (its status and description), for a ServiceError."""

    explained = True  # a service says why it refused (a 403 names its reason, not only "your role")

    def __init__(self, exc: ServiceError):
        self.code = exc.status
        self.description = exc.message


def render_service_error(exc: ServiceError):
    """A service refused: JSON naming the fields for the API, the one-line fragment for htmx, and for a page
    either the page it was sent from with the message flashed (a state conflict or bad input on a form
    post) or the error page. Nothing the request wrote is kept."""
    db.session.rollback()
    if is_api_request():
        return json_error(exc.status, exc.message, exc.fields)
    if is_panel_request():
        return render_template("_error_fragment.html", error=_Refusal(exc), message=exc.message), exc.status
    back = _same_site_referrer()
    if request.method == "POST" and isinstance(exc, (Conflict, Invalid)) and back:
        flash(exc.message, "warning")
        return redirect(back, code=303)
    return render_template("error.html", error=_Refusal(exc), message=exc.message), exc.status


def render_write_collision(exc: sa.exc.IntegrityError):
    """Two requests wrote the same unique value at the same moment (a workflow key, a version number) and this one
    lost: a 409 like any conflict, and nothing it wrote is kept. Any other integrity error is a bug: a 500."""
    if not is_unique_violation(exc):
        raise exc
    return render_service_error(Conflict("Someone else saved the same thing at the same moment, so nothing of yours "
                                         "was saved. Reload and try again."))


def _same_site_referrer() -> str | None:
    """The page of this console the request came from (its path and query), if the request names one."""
    referrer = request.referrer
    if not referrer or not same_origin(referrer):
        return None
    parts = urlsplit(referrer)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _too_large_message() -> str:
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if not limit:
        return "The request is too large."
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if limit % size == 0:
            return f"The request is too large: this server accepts at most {limit // size} {unit}."
    return f"The request is too large: this server accepts at most {limit} bytes."


def render_rate_limited(exc: RateLimitExceeded):
    """Too many failed attempts: say when to try again, on the sign-in form (or as JSON for the API)."""
    limit = limiter.current_limit
    wait = max(1, int(limit.reset_at - time.time())) if limit else 60
    minutes = -(-wait // 60)
    when = f"{minutes} minute{'s' if minutes != 1 else ''}" if wait >= 60 else f"{wait} seconds"
    message = f"Too many failed attempts. Try again in {when}."
    headers = [("Retry-After", str(wait))]
    if is_api_request():
        return json_error(429, message, headers=headers)
    if request.endpoint == "auth.login":
        email = request.form.get("email", "").strip().lower()
        return render_template("auth/login.html", error=message, email=email), 429, headers
    return render_template("error.html", error=exc, message=message), 429, headers
