"""The walker: given a definition, the placeholder context and a step's result, the next step or an event.

Pure domain: no Session, no models. It renders a step's settings, runs the step type, and turns what
happened into either the next step to take (`Next`) or an event that ends the walk (`Failed`,
`Parked`, `Completed`). Recording any of it is the journal's job.
"""
import traceback
from dataclasses import dataclass, field
from datetime import datetime

from app.engine.definition import END, Definition, StepSpec
from app.engine.events import Completed, Failed, Parked, RetryLater
from app.engine.expressions import ExpressionError, render_url, render_value
from app.engine.states import StepStatus
from app.engine.steps import STEP_TYPES, StepEnv, StepFailure, StepResult, StepType
from app.security.outbound import OutboundPolicy


@dataclass(frozen=True)
class WalkSettings:
    """What steps may use while they run, and which exceptions stop the walk instead of failing a step."""

    variables: dict = field(default_factory=dict)
    http_timeout: float = 30.0
    outbound: OutboundPolicy = field(default_factory=OutboundPolicy)
    # Exceptions that mean "stop this run now" (the job runner's time limit): never recorded as a
    # step's own error, they propagate to the caller, which ends the run.
    interrupts: tuple[type[BaseException], ...] = ()


@dataclass(frozen=True)
class Prepared:
    """A step about to run: its spec, its type and its settings with the placeholders filled in."""

    spec: StepSpec
    step_type: StepType
    input: dict

    @property
    def may_block(self) -> bool:
        return self.step_type.may_block


@dataclass(frozen=True)
class Next:
    """Where the walk goes after a completed step; `branch` and `note` say why when a condition chose."""

    key: str
    branch: str | None = None
    note: str | None = None


def initial_context(definition: Definition, settings: WalkSettings, *, run_id: int, trigger: str, attempt: int,
                    params: dict | None, record: dict | None) -> dict:
    """The names placeholders see: params, record, vars, run, and the steps done so far."""
    return {
        "params": dict(params or {}),
        "record": dict(record or {}),
        "vars": dict(settings.variables),
        "run": {"id": run_id, "trigger": trigger, "attempt": attempt, "workflow": definition.key},
        "steps": {},
    }


class Walker:
    """Walks one run's step graph; holds the placeholder context as steps complete."""

    def __init__(self, definition: Definition, context: dict, settings: WalkSettings):
        self.definition = definition
        self.context = context
        self.settings = settings

    @property
    def first(self) -> str:
        return self.definition.first

    def spec(self, key: str) -> StepSpec:
        return self.definition.steps[key]

    def remember(self, key: str, output: dict | None, status: StepStatus = StepStatus.COMPLETED) -> None:
        """Make a completed step's output visible to later placeholders (`steps.<key>.output`)."""
        self.context["steps"][key] = {"output": output, "status": StepStatus(status).value}

    def after(self, key: str) -> str:
        """The step after `key` once it completed outside a walk (a resumed wait); END if it is gone."""
        spec = self.definition.steps.get(key)
        return spec.next if spec else END

    def prepare(self, key: str) -> Prepared | Failed:
        """Render the step's settings; a placeholder that cannot be rendered fails the step."""
        spec = self.spec(key)
        step_type = STEP_TYPES[spec.type]
        try:
            rendered = {name: self._render(step_type, name, value) for name, value in spec.settings.items()}
        except ExpressionError as exc:
            return _failed(spec, "TEMPLATE_ERROR", f"A placeholder could not be rendered: {exc}",
                           "Check that every placeholder names a parameter, a variable or an earlier step's output.")
        return Prepared(spec, step_type, rendered)

    def execute(self, step: Prepared, now: datetime) -> StepResult | Failed:
        """Run the step; whatever it raises (but an interrupt) fails it with a code and, when known, a fix."""
        env = StepEnv(context=self.context, now=now, http_timeout=self.settings.http_timeout,
                      outbound=self.settings.outbound)
        try:
            return step.step_type.execute(step.input, env)
        except StepFailure as exc:
            return _failed(step.spec, exc.code, exc.message, exc.suggested_fix, detail=exc.detail, output=exc.output)
        except ExpressionError as exc:
            return _failed(step.spec, "EXPRESSION_ERROR", f"The expression could not be evaluated: {exc}",
                           "Check the names the expression uses against the earlier steps' output.")
        except Exception as exc:  # a bug or an unexpected library error: keep the stack trace for support
            if isinstance(exc, self.settings.interrupts):
                raise
            return _failed(step.spec, "UNEXPECTED_ERROR", f"{type(exc).__name__}: {exc}", None,
                           trace=traceback.format_exc())

    def prepared(self, key: str, rendered: dict) -> Prepared:
        """The step with settings rendered before (Retry step runs it again with the same input)."""
        spec = self.spec(key)
        return Prepared(spec, STEP_TYPES[spec.type], rendered)

    def retry_or_fail(self, spec: StepSpec, failure: Failed, tried: int, now: datetime) -> RetryLater | Failed:
        """After a failed try (the `tried`-th): another try later when the step's retry policy covers the error
        and tries remain, else the failure."""
        policy = spec.retry
        if policy is None or tried >= policy.max_attempts or not policy.covers(failure.code):
            return failure
        return RetryLater(failure, tried, policy.max_attempts, now + policy.delay(tried), failed_at=now)

    def advance(self, spec: StepSpec, result: StepResult) -> Next | Parked:
        """After a step's result: park on a wait, or remember its output and pick the next step."""
        if result.park_until is not None:
            return Parked(spec.key, spec.name, result.park_until)
        self.remember(spec.key, result.output)
        if result.branch:
            target = (spec.then if result.branch == "then" else spec.otherwise) or spec.next
            value = str(bool((result.output or {}).get("value"))).lower()
            return Next(target, branch=f"{result.branch} → {target}",
                        note=f"Condition '{spec.name}' is {value}: taking {result.branch} → {target}")
        return Next(spec.next)

    def completed(self) -> Completed:
        """The walk reached the end: the run's result is every completed step's output."""
        return Completed({"steps": {key: step["output"] for key, step in self.context["steps"].items()}})

    def _render(self, step_type: StepType, name: str, value):
        """A step setting with its placeholders filled in (expressions stay as written)."""
        if name in step_type.raw_settings:
            return value
        if name in step_type.url_settings:
            return render_url(value, self.context)
        return render_value(value, self.context)


def _failed(spec: StepSpec, code: str, message: str, fix: str | None, *, trace: str | None = None,
            detail: str | None = None, output: dict | None = None) -> Failed:
    return Failed(spec.key, spec.name, code, message, suggested_fix=fix, traceback=trace, detail=detail,
                  output=output)
