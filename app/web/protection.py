"""Browser-side protection on every response, and the same-origin rule for requests that change things."""
from urllib.parse import urlsplit

from flask import Flask, abort, current_app, request

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# Bearer-token scripts are not browsers riding on a cookie; the API checks its own credentials.
ORIGIN_EXEMPT_BLUEPRINTS = frozenset({"api", "sandbox"})


def init_app(app: Flask) -> None:
    """Send the security headers on every response and refuse cross-site requests that change things."""

    @app.before_request
    def same_origin_only():
        if request.method in SAFE_METHODS or request.blueprint in ORIGIN_EXEMPT_BLUEPRINTS:
            return None
        source = request.headers.get("Origin") or request.headers.get("Referer")
        if source and source != "null" and not same_origin(source):
            abort(403, description="This request came from another site and was refused.")
        if request.headers.get("Origin") == "null":
            abort(403, description="This request came from an opaque origin and was refused.")
        return None

    @app.after_request
    def security_headers(response):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("X-Frame-Options", "DENY")
        if app.config["HTTPS"]:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response


def same_origin(source: str) -> bool:
    """Whether an Origin or Referer names this console (scheme, host and port)."""
    try:
        parts = urlsplit(source)
        theirs = (parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or _default_port(parts.scheme))
    except ValueError:
        return False
    # Behind a proxy that terminates TLS the request arrives as http; FLOWDESK_HTTPS says what browsers use.
    scheme = "https" if current_app.config["HTTPS"] else request.scheme
    ours_parts = urlsplit(f"{scheme}://{request.host}")
    try:
        ours = (scheme, (ours_parts.hostname or "").lower(), ours_parts.port or _default_port(scheme))
    except ValueError:
        return False
    return theirs == ours


def _default_port(scheme: str) -> int | None:
    return {"http": 80, "https": 443}.get(scheme.lower())
