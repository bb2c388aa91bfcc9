"""Settings read from the environment, with embedded defaults for a fresh machine."""
import json
import os
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


DEV_SECRET_KEY = "dev-only-change-me"


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


def load_config() -> dict:
    """Collect the app settings from the environment."""
    port = int(os.environ.get("PORT", "5000"))
    demo = os.environ.get("FLOWDESK_DEMO", "") not in ("", "0", "false")
    variables = _json_object("FLOWDESK_VARS", os.environ.get("FLOWDESK_VARS") or "{}")
    if demo:
        variables.setdefault("sandbox_url", f"http://127.0.0.1:{port}/sandbox")
    max_content_length = int(os.environ.get("FLOWDESK_MAX_CONTENT_LENGTH", str(1024 * 1024)))
    return {
        "SECRET_KEY": os.environ.get("SECRET_KEY", DEV_SECRET_KEY),
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
        # RQ stops a run job after this many seconds (its own default, 180 s, is too short for runs
        # with several slow HTTP steps); the run then ends as an error with code JOB_TIMEOUT.
        "RUN_JOB_TIMEOUT": int(os.environ.get("FLOWDESK_RUN_JOB_TIMEOUT", "3600")),
        # Larger request bodies answer 413; form fields share the same limit (Flask's own default is 500 kB).
        "MAX_CONTENT_LENGTH": max_content_length,
        "MAX_FORM_MEMORY_SIZE": max_content_length,
        "WTF_CSRF_TIME_LIMIT": None,
        "HTMX_JS": "vendor/htmx-2.0.11.min.js",
        "SESSION_COOKIE_SAMESITE": "Lax",
    }
