"""Step types: what each kind of step checks in its settings and what it does when it runs.

One module per family (control, http, approval); this module holds what they share and the registry.
"""
from dataclasses import dataclass, field
from datetime import datetime

from app.security.outbound import OutboundPolicy


class StepFailure(Exception):
    """A step failed in a way the user can act on: a code, a message and, when known, a fix."""

    def __init__(
        self, code: str, message: str, suggested_fix: str | None = None, detail: str | None = None,
        output: dict | None = None,
    ):
        super().__init__(message)
        self.code = code
        self.message = message
        self.suggested_fix = suggested_fix
        # What went wrong underneath (the socket's own error, the request and answer): a technical line for support.
        self.detail = detail
        # What the step got before it failed (an HTTP answer): kept on the failed step run.
        self.output = output


@dataclass(frozen=True)
class ApprovalRequest:
    """What an approval step asks: a decision on `message` by one of `roles`, before `due` (naive UTC)."""

    message: str
    roles: tuple[str, ...]
    due: datetime
    allow_self_approval: bool = False


@dataclass
class StepResult:
    output: dict | None = None
    # For a condition: the step key (or "end") to go to instead of the default next step.
    goto: str | None = None
    branch: str | None = None
    # For a wait step: park the run until this naive-UTC time.
    park_until: datetime | None = None
    # For an approval step: park the run until someone decides (or the request times out).
    approval: ApprovalRequest | None = None
    logs: list[tuple[str, str, dict | None]] = field(default_factory=list)
    # The record key the step's log lines carry instead of the run's own (a log step's `record_key`).
    record_key: str | None = None
    # Technical lines (level, message, meta) for support only: an HTTP request and its answer.
    technical_logs: list[tuple[str, str, dict | None]] = field(default_factory=list)


@dataclass
class StepEnv:
    """What a step may use while it runs: the placeholder context and the console's settings."""

    context: dict
    now: datetime
    http_timeout: float = 30.0
    outbound: OutboundPolicy = field(default_factory=OutboundPolicy)


class StepType:
    name = ""
    # Set when the step can take long (network, timers): the executor commits before it runs.
    may_block = False
    # Settings that are expressions, not placeholder templates.
    raw_settings: tuple[str, ...] = ()
    # Settings that are URLs: each placeholder's value is percent-encoded as one path segment or query value.
    url_settings: tuple[str, ...] = ()

    def validate(self, settings: dict) -> list[tuple[str, str]]:
        """Return (setting, message) pairs for bad settings."""
        return []

    def execute(self, settings: dict, env: StepEnv) -> StepResult:
        raise NotImplementedError


def require_text(settings: dict, key: str) -> list[tuple[str, str]]:
    value = settings.get(key)
    if not isinstance(value, str) or not value.strip():
        return [(key, "is required")]
    return []


def _registry() -> dict[str, StepType]:
    from app.engine.steps.approval import ApprovalStep
    from app.engine.steps.control import ConditionStep, FailStep, LogStep, NoopStep, WaitStep
    from app.engine.steps.http import HttpRequestStep

    return {t.name: t for t in (NoopStep(), LogStep(), HttpRequestStep(), ConditionStep(), WaitStep(), FailStep(),
                                ApprovalStep())}


STEP_TYPES: dict[str, StepType] = _registry()
