"""Step types: what each kind of step checks in its settings and what it does when it runs."""
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import requests

from app.engine.expressions import check_expression, evaluate

LOG_LEVELS = ("debug", "info", "warning", "error")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
MAX_TEXT = 100_000
MAX_WAIT_SECONDS = 30 * 86400


class StepFailure(Exception):
    """A step failed in a way the user can act on: a code, a message and, when known, a fix."""

    def __init__(self, code: str, message: str, suggested_fix: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.suggested_fix = suggested_fix


@dataclass
class StepResult:
    output: dict | None = None
    # For a condition: the step key (or "end") to go to instead of the default next step.
    goto: str | None = None
    branch: str | None = None
    # For a wait step: park the run until this naive-UTC time.
    park_until: datetime | None = None
    logs: list[tuple[str, str, dict | None]] = field(default_factory=list)


@dataclass
class StepEnv:
    """What a step may use while it runs: the placeholder context and the console's settings."""

    context: dict
    now: datetime
    http_timeout: float = 30.0


class StepType:
    name = ""
    # Set when the step can take long (network, timers): the executor commits before it runs.
    may_block = False
    # Settings that are expressions, not placeholder templates.
    raw_settings: tuple[str, ...] = ()

    def validate(self, settings: dict) -> list[tuple[str, str]]:
        """Return (setting, message) pairs for bad settings."""
        return []

    def execute(self, settings: dict, env: StepEnv) -> StepResult:
        raise NotImplementedError


def _require_text(settings: dict, key: str) -> list[tuple[str, str]]:
    value = settings.get(key)
    if not isinstance(value, str) or not value.strip():
        return [(key, "is required")]
    return []


class NoopStep(StepType):
    name = "noop"

    def execute(self, settings, env):
        return StepResult(output={})


class LogStep(StepType):
    name = "log"

    def validate(self, settings):
        errors = _require_text(settings, "message")
        if settings.get("level", "info") not in LOG_LEVELS:
            errors.append(("level", f"must be one of {', '.join(LOG_LEVELS)}"))
        return errors

    def execute(self, settings, env):
        level = settings.get("level", "info")
        message = str(settings["message"])
        return StepResult(output={"level": level, "message": message}, logs=[(level, message, None)])


class HttpRequestStep(StepType):
    name = "http_request"
    may_block = True

    def validate(self, settings):
        errors = _require_text(settings, "url")
        if str(settings.get("method", "GET")).upper() not in HTTP_METHODS:
            errors.append(("method", f"must be one of {', '.join(HTTP_METHODS)}"))
        if "headers" in settings and not isinstance(settings["headers"], dict):
            errors.append(("headers", "must be an object of header names and values"))
        timeout = settings.get("timeout")
        if timeout is not None and (not isinstance(timeout, (int, float)) or not 0 < timeout <= 300):
            errors.append(("timeout", "must be a number of seconds between 0 and 300"))
        return errors

    def execute(self, settings, env):
        method = str(settings.get("method", "GET")).upper()
        url = str(settings["url"])
        timeout = float(settings.get("timeout") or env.http_timeout)
        kwargs: dict[str, Any] = {"headers": {str(k): str(v) for k, v in (settings.get("headers") or {}).items()}}
        if "json" in settings:
            kwargs["json"] = settings["json"]
        elif "body" in settings:
            kwargs["data"] = str(settings["body"]).encode()
        try:
            response = requests.request(method, url, timeout=timeout, allow_redirects=False, **kwargs)
        except requests.Timeout:
            raise StepFailure(
                "HTTP_TIMEOUT",
                f"{method} {url} did not answer within {timeout:g} s",
                "Check that the service is up, or raise the step's timeout.",
            ) from None
        except requests.RequestException as exc:
            raise StepFailure(
                "HTTP_CONNECTION",
                f"{method} {url} failed: {exc.__class__.__name__}: {exc}",
                "Check the URL and that the service is reachable from the workers.",
            ) from None
        text = response.text
        output: dict[str, Any] = {
            "status": response.status_code,
            "headers": dict(response.headers),
            "text": text[:MAX_TEXT],
        }
        if len(text) > MAX_TEXT:
            output["text_truncated"] = True
        if "json" in response.headers.get("Content-Type", ""):
            try:
                output["json"] = response.json()
            except ValueError:
                pass
        elapsed_ms = round(response.elapsed.total_seconds() * 1000)
        logs = [("info", f"{method} {url} answered {response.status_code} in {elapsed_ms} ms", None)]
        if response.status_code >= 400 and settings.get("fail_on_error", True):
            raise StepFailure(
                f"HTTP_{response.status_code}",
                f"{method} {url} answered {response.status_code} {response.reason}: {text[:300]}",
                "Check the request's URL, parameters and credentials against the service's answer.",
            )
        return StepResult(output=output, logs=logs)


class ConditionStep(StepType):
    name = "condition"
    raw_settings = ("expression",)

    def validate(self, settings):
        errors = _require_text(settings, "expression")
        if not errors:
            message = check_expression(settings["expression"])
            if message:
                errors.append(("expression", message))
        return errors

    def execute(self, settings, env):
        value = evaluate(settings["expression"], env.context)
        return StepResult(output={"value": value, "result": bool(value)}, branch="then" if value else "else")


class WaitStep(StepType):
    name = "wait"
    may_block = True

    def validate(self, settings):
        seconds = settings.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds <= MAX_WAIT_SECONDS:
            return [("seconds", f"must be a number of seconds between 0 and {MAX_WAIT_SECONDS}")]
        return []

    def execute(self, settings, env):
        seconds = float(settings["seconds"])
        until = env.now + timedelta(seconds=seconds)
        return StepResult(output={"seconds": seconds}, park_until=until)


class FailStep(StepType):
    name = "fail"

    def validate(self, settings):
        return _require_text(settings, "code") + _require_text(settings, "message")

    def execute(self, settings, env):
        raise StepFailure(str(settings["code"]), str(settings["message"]), settings.get("suggested_fix"))


STEP_TYPES: dict[str, StepType] = {
    t.name: t for t in (NoopStep(), LogStep(), HttpRequestStep(), ConditionStep(), WaitStep(), FailStep())
}
