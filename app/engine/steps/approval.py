"""The approval step: the run parks, holding no worker, until a person whose role is listed approves or rejects it.

The step itself only says what it asks (the rendered message, who may decide, by when); deciding is a service
(app.services.runs.approvals), and a request nobody decided on in time is rejected by a scheduled job.
"""
from datetime import timedelta

from app.engine.steps import ApprovalRequest, StepResult, StepType, require_text
from app.vocabulary import ROLES

DEFAULT_TIMEOUT_SECONDS = 86400
MAX_TIMEOUT_SECONDS = 90 * 86400
MAX_MESSAGE = 2000
SETTINGS = ("roles", "message", "timeout_seconds", "allow_self_approval")


class ApprovalStep(StepType):
    name = "approval"
    # Who may decide and for how long are read as written, never rendered: a placeholder cannot widen them.
    raw_settings = ("roles", "timeout_seconds", "allow_self_approval")

    def validate(self, settings):
        errors = []
        unknown = sorted(set(settings) - set(SETTINGS))
        if unknown:
            errors.append((unknown[0], f"is not a setting of an approval step; use {', '.join(SETTINGS)}"))
        roles = settings.get("roles")
        if not isinstance(roles, list) or not roles or any(not isinstance(r, str) or r not in ROLES for r in roles):
            errors.append(("roles", f"must be a non-empty list of the roles that may decide, from {', '.join(ROLES)}"))
        errors += require_text(settings, "message")
        if isinstance(settings.get("message"), str) and len(settings["message"]) > MAX_MESSAGE:
            errors.append(("message", f"must be at most {MAX_MESSAGE} characters"))
        timeout = settings.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= MAX_TIMEOUT_SECONDS:
            errors.append(("timeout_seconds",
                           f"must be a number of seconds between 0 and {MAX_TIMEOUT_SECONDS} (90 days)"))
        if not isinstance(settings.get("allow_self_approval", False), bool):
            errors.append(("allow_self_approval", "must be true or false"))
        return errors

    def execute(self, settings, env):
        seconds = float(settings.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS))
        request = ApprovalRequest(
            message=str(settings["message"])[:MAX_MESSAGE],
            roles=tuple(dict.fromkeys(settings["roles"])),
            due=env.now + timedelta(seconds=seconds),
            allow_self_approval=bool(settings.get("allow_self_approval", False)),
        )
        return StepResult(approval=request)
