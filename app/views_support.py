"""Request-wide glue: the user loader, template helpers and filters."""
import hmac
from datetime import datetime

from flask import Flask
from flask_login import current_user

from app.engine.states import RunStatus, StepStatus, Verdict
from app.extensions import db, login_manager
from app.models import User
from app.security import Capability, can
from app.vocabulary import LogLevel, Role, Trigger, WorkflowKind, WorkflowState


def init_app(app: Flask) -> None:
    @login_manager.user_loader
    def load_user(cookie_id: str):
        """The user a session or remember-me cookie names, if its session token is still current."""
        user_id, _, token = cookie_id.partition(":")
        if not user_id.isdigit() or len(user_id) > 18 or not token:
            return None
        user = db.session.get(User, int(user_id))
        if user is None or not hmac.compare_digest(user.session_token.encode(), token.encode()):
            return None
        return user

    @app.context_processor
    def helpers():
        return {
            "can": lambda capability: can(current_user, Capability(capability)),
            "RunStatus": RunStatus,
            "StepStatus": StepStatus,
            "Verdict": Verdict,
            "Role": Role,
            "WorkflowKind": WorkflowKind,
            "Trigger": Trigger,
            "WorkflowState": WorkflowState,
            "LogLevel": LogLevel,
        }

    app.jinja_env.filters["when"] = _when
    app.jinja_env.filters["duration"] = _duration
    app.jinja_env.filters["status_label"] = _status_label
    app.jinja_env.filters["trigger_label"] = _trigger_label
    app.jinja_env.filters["pretty_json"] = _pretty_json


def _status_label(status: str) -> str:
    try:
        return RunStatus(status).label
    except ValueError:
        return str(status).capitalize()


def _trigger_label(trigger: str) -> str:
    try:
        return Trigger(trigger).label
    except ValueError:
        return str(trigger).capitalize()


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "—"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _pretty_json(value) -> str:
    import json

    return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)
