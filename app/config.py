"""Settings read from the environment, with embedded defaults for a fresh machine."""
import json
import os
import re
import secrets
import time
from datetime import timedelta
from pathlib import Path


def instance_dir() -> Path:
    """Where the embedded SQLite file and Redis live: $FLOWDESK_INSTANCE or ./instance in the checkout."""
    return Path(os.environ.get("FLOWDESK_INSTANCE") or Path(__file__).resolve().parent.parent / "instance")


def database_url(raw: str | None) -> str:
    """Return the SQLAlchemy URL for DATABASE_URL, defaulting to a SQLite file under instance/."""
    if not raw:
        return f"sqlite:///{instance_dir() / 'flowdesk.db'}"
    if raw.startswith("postgres://"):
        raw = "postgresql://" + raw[len("postgres://"):]
    if raw.startswith("postgresql://"):
        raw = "postgresql+psycopg://" + raw[len("postgresql://"):]
    return raw


class ConfigError(RuntimeError):
    """A setting in the environment is malformed; the message names it."""


def _json_object(name: str, raw: str) -> dict:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a JSON object like {{\"sandbox_url\": \"http://...\"}}: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a JSON object, not {type(value).__name__}")
    return value


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def _retention_days() -> int | None:
    raw = os.environ.get("FLOWDESK_RETENTION_DAYS", "").strip()
    if not raw:
        return None
    if not re.fullmatch(r"[0-9]+", raw) or int(raw) < 1:
        raise ConfigError(
            f"FLOWDESK_RETENTION_DAYS must be a whole number of days, at least 1, not {raw!r} "
            "(leave it unset to keep every run)"
        )
    return int(raw)


def load_config() -> dict:
    """Collect the app settings from the environment."""
    port = int(os.environ.get("PORT", "5000"))
    demo = _flag("FLOWDESK_DEMO")
    https = _flag("FLOWDESK_HTTPS")
    variables = _json_object("FLOWDESK_VARS", os.environ.get("FLOWDESK_VARS") or "{}")
    if demo:
        variables.setdefault("sandbox_url", f"http://127.0.0.1:{port}/sandbox")
    heartbeat = float(os.environ.get("FLOWDESK_HEARTBEAT_SECONDS", "5"))
    stale = float(os.environ.get("FLOWDESK_STALE_RUN_SECONDS", "30"))
    if not 0 < heartbeat <= stale / 3:
        raise ConfigError(
            f"FLOWDESK_HEARTBEAT_SECONDS ({heartbeat:g}) must be positive and at most a third of "
            f"FLOWDESK_STALE_RUN_SECONDS ({stale:g}), or runs whose worker is alive would be ended as lost"
        )
    max_content_length = int(os.environ.get("FLOWDESK_MAX_CONTENT_LENGTH", str(1024 * 1024)))
    return {
        # Unset: refused in production (a DATABASE_URL outside demo mode), else generated once under instance/.
        "SECRET_KEY": os.environ.get("SECRET_KEY") or None,
        "SQLALCHEMY_DATABASE_URI": database_url(os.environ.get("DATABASE_URL")),
        "REDIS_URL": os.environ.get("REDIS_URL") or None,
        "INSTANCE_DIR": str(instance_dir()),
        "PORT": port,
        "DEMO_MODE": demo,
        # Console-wide variables that definitions see as `vars`; never the process environment.
        "FLOWDESK_VARS": variables,
        # Between steps the worker commits buffered step runs and log lines at most this often.
        "CHECKPOINT_SECONDS": float(os.environ.get("FLOWDESK_CHECKPOINT_SECONDS", "0.25")),
        "HTTP_STEP_TIMEOUT": float(os.environ.get("FLOWDESK_HTTP_TIMEOUT", "30")),
        # Internal addresses steps may reach after all: host names, host:port pairs, CIDR ranges (comma-separated).
        # Demo mode adds the sandbox's own host:port.
        "OUTBOUND_ALLOW": os.environ.get("FLOWDESK_OUTBOUND_ALLOW", ""),
        # RQ stops a run job after this many seconds (its own default, 180 s, is too short for runs
        # with several slow HTTP steps); the run then ends as an error with code JOB_TIMEOUT.
        "RUN_JOB_TIMEOUT": int(os.environ.get("FLOWDESK_RUN_JOB_TIMEOUT", "3600")),
        # A worker heartbeats a running run this often, also while a long step runs.
        "HEARTBEAT_SECONDS": heartbeat,
        # A running run whose heartbeat is older than this has lost its worker: the reconciler ends it
        # as an error WORKER_LOST.
        "STALE_RUN_SECONDS": stale,
        # Finished runs older than this many days are deleted (with their steps and job log) by a job the
        # scheduler fires once a day; None keeps every run.
        "RETENTION_DAYS": _retention_days(),
        # Larger request bodies answer 413; form fields share the same limit (Flask's own default is 500 kB).
        "MAX_CONTENT_LENGTH": max_content_length,
        "MAX_FORM_MEMORY_SIZE": max_content_length,
        "WTF_CSRF_TIME_LIMIT": None,
        "HTMX_JS": "vendor/htmx-2.0.11.min.js",
        # Served over HTTPS (directly or behind a proxy that terminates TLS): Secure cookies and HSTS.
        "HTTPS": https,
        "PREFERRED_URL_SCHEME": "https" if https else "http",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": https,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": https,
        "REMEMBER_COOKIE_DURATION": timedelta(days=14),
        # Failed sign-ins allowed per account and per client address, and failed API tokens per address,
        # in Flask-Limiter's notation; past them the answer is 429 with Retry-After.
        "LOGIN_LIMIT_ACCOUNT": os.environ.get("FLOWDESK_LOGIN_LIMIT_ACCOUNT", "5 per 15 minutes"),
        "LOGIN_LIMIT_ADDRESS": os.environ.get("FLOWDESK_LOGIN_LIMIT_ADDRESS", "30 per minute"),
        "API_AUTH_LIMIT": os.environ.get("FLOWDESK_API_AUTH_LIMIT", "30 per minute"),
    }


def secret_key(settings: dict) -> str:
    """SECRET_KEY as set; refused when unset in production; else a random key kept under instance/ (0600)."""
    if settings.get("SECRET_KEY"):
        return settings["SECRET_KEY"]
    production = not str(settings.get("SQLALCHEMY_DATABASE_URI", "")).startswith("sqlite")
    if production and not settings.get("DEMO_MODE"):
        raise ConfigError(
            "SECRET_KEY is not set. With a DATABASE_URL (production) Flowdesk refuses to start without it: "
            "set SECRET_KEY to a long random value, the same for every web, worker and scheduler process "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))')."
        )
    return _instance_secret_key(Path(settings["INSTANCE_DIR"]) / "secret_key")


def _instance_secret_key(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # another process may be writing it right now
            key = path.read_text().strip()
            if key:
                return key
            time.sleep(0.02)
        raise ConfigError(f"{path} is empty; delete it to generate a new SECRET_KEY") from None
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key


def outbound_policy(settings: dict):
    """The outbound address policy from OUTBOUND_ALLOW, plus, in demo mode, URLs under the sandbox (only those:
    the console's own API on the same port stays out of reach)."""
    from urllib.parse import urlsplit

    from app.security.outbound import OutboundPolicy

    try:
        policy = OutboundPolicy.parse(settings.get("OUTBOUND_ALLOW"))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    sandbox = settings.get("FLOWDESK_VARS", {}).get("sandbox_url")
    if settings.get("DEMO_MODE") and isinstance(sandbox, str):
        parts = urlsplit(sandbox)
        if parts.hostname:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            sandbox_path = "/" + parts.path.strip("/")
            policy = policy.merged(OutboundPolicy(prefixes=frozenset({(parts.hostname.lower(), port, sandbox_path)})))
    return policy
