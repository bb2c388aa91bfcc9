"""HTTP errors as the caller reads them: JSON `{"error": ..., "fields": {...}}` under /api/, a page elsewhere."""
import time

from flask import Flask, Response, current_app, jsonify, render_template, request
from flask_limiter import RateLimitExceeded
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from app.extensions import limiter

API_PREFIX = "/api/"


def init_app(app: Flask) -> None:
    """Answer every HTTP error (400, 403, 404, 405, 413, ...) as JSON for the API and as a page for people."""
    app.register_error_handler(HTTPException, render_http_error)
    app.register_error_handler(RateLimitExceeded, render_rate_limited)


def is_api_request() -> bool:
    """Whether the request is for the JSON API, even one that matched no route."""
    return request.path.startswith(API_PREFIX)


def json_error(status: int, message: str, fields: dict | None = None, headers=()) -> Response:
    """The API's error answer: a message, and what is wrong with each named field."""
    response = jsonify({"error": message, "fields": fields or {}})
    response.status_code = status
    response.headers.extend(headers)
    return response


def render_http_error(exc: HTTPException):
    """JSON for the API, the error page for people; keeps headers such as Allow and Retry-After."""
    headers = [(name, value) for name, value in exc.get_headers() if name.lower() != "content-type"]
    message = _too_large_message() if isinstance(exc, RequestEntityTooLarge) else exc.description or exc.name
    if is_api_request():
        return json_error(exc.code, message, getattr(exc, "fields", None), headers)
    if exc.code >= 500:
        return exc
    return render_template("error.html", error=exc, message=message), exc.code, headers


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
