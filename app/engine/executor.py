"""The executor: claims a run, walks its steps, records step runs and log lines, and parks or finishes it.

Writes are buffered and committed at checkpoints: before a step that may block, when
`checkpoint_seconds` have passed since the last commit, and whenever the run parks or finishes.
Each checkpoint also heartbeats the run and reads its cancel request in the same statement.
"""
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.engine.definition import END, Definition, DefinitionError, StepSpec, parse_definition
from app.engine.expressions import ExpressionError, render_url, render_value
from app.engine.states import RunStatus, StepStatus
from app.engine.steps import STEP_TYPES, StepEnv, StepFailure
from app.engine.transitions import claim, move
from app.models.log import LogEntry
from app.models.run import Run, StepRun
from app.models.workflow import WorkflowVersion
from app.security.outbound import OutboundPolicy
from app.timeutil import utcnow
from app.vocabulary import LogLevel


@dataclass
class ExecutorSettings:
    variables: dict = field(default_factory=dict)
    checkpoint_seconds: float = 0.25
    http_timeout: float = 30.0
    outbound: OutboundPolicy = field(default_factory=OutboundPolicy)
    # Exceptions that mean "stop this run now" (the job runner's time limit): never recorded as a
    # step's own error, they propagate to the caller, which ends the run.
    interrupts: tuple[type[BaseException], ...] = ()


@dataclass
class Outcome:
    """What a job did with a run: `status` is the run's status afterwards, or "skipped" if not claimed."""

    status: str
    park_until: datetime | None = None
    step_run_id: int | None = None
    queue: str | None = None


@dataclass(frozen=True)
class RunSnapshot:
    """The columns of a run the executor reads, returned by the claim itself."""

    id: int
    version_id: int
    attempt: int
    params: dict
    cursor: str | None
    trigger: str
    trigger_detail: str
    queue: str
    progress_done: int
    context: dict | None
    record_key: str | None


_SNAPSHOT_COLUMNS = (
    Run.id, Run.version_id, Run.attempt, Run.params, Run.cursor, Run.trigger, Run.trigger_detail, Run.queue,
    Run.progress_done, Run.context, Run.record_key,
)


def execute_run(session: Session, run_id: int, settings: ExecutorSettings, resume: bool = False) -> Outcome:
    """Claim a pending run (or, with `resume`, a waiting one) and walk its steps until it parks or finishes."""
    now = utcnow()
    source = RunStatus.WAITING if resume else RunStatus.PENDING
    values = {"heartbeat_at": now} if resume else {"heartbeat_at": now, "started_at": now}
    row = claim(session, run_id, source, *_SNAPSHOT_COLUMNS, **values)
    session.commit()
    if row is None:
        return Outcome(status="skipped")
    run = RunSnapshot(**row._asdict())
    document = session.scalar(sa.select(WorkflowVersion.definition).where(WorkflowVersion.id == run.version_id))
    try:
        definition = parse_definition(document)
    except DefinitionError as exc:
        session.add(LogEntry.line(run.id, LogLevel.ERROR, f"The workflow definition is invalid: {exc}"))
        move(
            session, run_id, RunStatus.ERROR,
            error_code="INVALID_DEFINITION", error_message=str(exc), finished_at=utcnow(),
        )
        session.commit()
        return Outcome(status=RunStatus.ERROR.value)
    return _Walk(session, run, definition, settings).go(resume)


class _Walk:
    def __init__(self, session: Session, run: RunSnapshot, definition: Definition, settings: ExecutorSettings):
        self.session = session
        self.run = run
        self.run_id = run.id
        self.attempt = run.attempt
        self.definition = definition
        self.settings = settings
        self.done = run.progress_done
        self.total = len(definition.steps)
        self.pending_logs: list[tuple[StepRun | None, dict]] = []
        self.last_commit = time.monotonic()
        self.context = {
            "params": dict(run.params or {}),
            "record": dict(run.context or {}),
            "vars": dict(settings.variables),
            "run": {"id": run.id, "trigger": run.trigger, "attempt": run.attempt, "workflow": definition.key},
            "steps": {},
        }

    def log(
        self, level: LogLevel | str, message: str, step_run: StepRun | None = None, meta=None, technical=False,
        record_key: str | None = None,
    ) -> None:
        """Buffer a log line; it carries the run's record key unless the step names another."""
        level = LogLevel(level)
        self.pending_logs.append((step_run, {
            "run_id": self.run_id,
            "created_at": utcnow(),
            "level": level.value,
            "level_rank": level.rank,
            "message": message,
            "meta": meta,
            "technical": technical,
            "record_key": record_key or self.run.record_key,
        }))

    def flush(self) -> None:
        """Write buffered step runs (one batched INSERT by the unit of work) and log lines (one INSERT)."""
        self.session.flush()
        if self.pending_logs:
            rows = [{**row, "step_run_id": sr.id if sr is not None else None} for sr, row in self.pending_logs]
            self.session.execute(sa.insert(LogEntry), rows)
            self.pending_logs = []

    def checkpoint(self) -> str:
        """Commit buffered work and heartbeat; returns "ok", "cancel" (cancel requested) or "lost"."""
        self.flush()
        row = self.session.execute(
            sa.update(Run)
            .where(Run.id == self.run_id, Run.status == RunStatus.RUNNING.value)
            .values(heartbeat_at=utcnow(), progress_done=self.done, progress_total=self.total)
            .returning(Run.cancel_requested_at)
            .execution_options(synchronize_session=False)
        ).first()
        self.session.commit()
        self.last_commit = time.monotonic()
        if row is None:
            return "lost"
        return "cancel" if row.cancel_requested_at is not None else "ok"

    def due(self) -> bool:
        return time.monotonic() - self.last_commit >= self.settings.checkpoint_seconds

    def load_completed_steps(self) -> None:
        rows = self.session.scalars(
            sa.select(StepRun)
            .where(StepRun.run_id == self.run_id, StepRun.status == StepStatus.COMPLETED.value)
            .order_by(StepRun.id)
        )
        for sr in rows:
            self.context["steps"][sr.step_key] = {"output": sr.output, "status": sr.status}

    def go(self, resume: bool) -> Outcome:
        if resume:
            self.load_completed_steps()
            key = self.finish_wait()
        elif self.run.cursor:
            self.load_completed_steps()
            key = self.run.cursor
        else:
            who = self.run.trigger_detail or self.run.trigger
            self.log(LogLevel.INFO, f"Run #{self.run_id} of {self.definition.name} started (attempt {self.attempt}, {who})")
            key = self.definition.first
        while key != END:
            if self.due():
                state = self.checkpoint()
                if state != "ok":
                    return self.stop(state)
            spec = self.definition.steps[key]
            outcome_or_next = self.run_step(spec)
            if isinstance(outcome_or_next, Outcome):
                return outcome_or_next
            key = outcome_or_next
        return self.complete()

    def finish_wait(self) -> str:
        sr = self.session.scalars(
            sa.select(StepRun)
            .where(StepRun.run_id == self.run_id, StepRun.status == StepStatus.WAITING.value)
            .order_by(StepRun.id.desc())
            .limit(1)
        ).first()
        if sr is None:
            return self.run.cursor or self.definition.first
        now = utcnow()
        sr.status = StepStatus.COMPLETED.value
        sr.resumed_at = now
        sr.finished_at = now
        late = (now - sr.resume_at).total_seconds() if sr.resume_at else 0.0
        sr.output = {**(sr.output or {}), "resume_at": _iso(sr.resume_at), "resumed_at": _iso(now)}
        self.context["steps"][sr.step_key] = {"output": sr.output, "status": sr.status}
        self.done += 1
        self.log(LogLevel.INFO, f"Resumed after '{sr.step_name}' (scheduled {_iso(sr.resume_at)}, {late:.1f} s late)", sr)
        spec = self.definition.steps.get(sr.step_key)
        return spec.next if spec else END

    def run_step(self, spec: StepSpec):
        step_type = STEP_TYPES[spec.type]
        now = utcnow()
        sr = StepRun(
            run_id=self.run_id, attempt=self.attempt, step_key=spec.key, step_type=spec.type,
            step_name=spec.name, status=StepStatus.RUNNING.value, scheduled_at=now, started_at=now,
        )
        self.session.add(sr)
        try:
            rendered = {k: self.render(step_type, k, v) for k, v in spec.settings.items()}
        except ExpressionError as exc:
            sr.input = spec.settings
            return self.fail(
                sr, "TEMPLATE_ERROR", f"A placeholder could not be rendered: {exc}",
                "Check that every placeholder names a parameter, a variable or an earlier step's output.",
            )
        sr.input = rendered
        if step_type.may_block:
            # Only a step that can take a while gets a "started" line, committed before it runs.
            self.log(LogLevel.DEBUG, f"Step '{spec.name}' started", sr)
            state = self.checkpoint()
            if state != "ok":
                return self.stop(state, current=sr)
        env = StepEnv(context=self.context, now=utcnow(), http_timeout=self.settings.http_timeout,
                      outbound=self.settings.outbound)
        try:
            result = step_type.execute(rendered, env)
        except StepFailure as exc:
            return self.fail(sr, exc.code, exc.message, exc.suggested_fix, detail=exc.detail, output=exc.output)
        except ExpressionError as exc:
            return self.fail(
                sr, "EXPRESSION_ERROR", f"The expression could not be evaluated: {exc}",
                "Check the names the expression uses against the earlier steps' output.",
            )
        except Exception as exc:  # a bug or an unexpected library error: keep the stack trace for support
            if isinstance(exc, self.settings.interrupts):
                raise
            return self.fail(
                sr, "UNEXPECTED_ERROR", f"{type(exc).__name__}: {exc}", None, traceback.format_exc()
            )
        for level, message, meta in result.logs:
            self.log(level, message, sr, meta, record_key=result.record_key)
        for level, message, meta in result.technical_logs:
            self.log(level, message, sr, meta, technical=True, record_key=result.record_key)
        sr.output = result.output
        if result.park_until is not None:
            return self.park(sr, result.park_until)
        sr.status = StepStatus.COMPLETED.value
        sr.finished_at = utcnow()
        self.context["steps"][spec.key] = {"output": result.output, "status": sr.status}
        self.done += 1
        if result.branch:
            target = (spec.then if result.branch == "then" else spec.otherwise) or spec.next
            sr.branch = f"{result.branch} → {target}"
            self.log(LogLevel.INFO, f"Condition '{spec.name}' is {str(bool(result.output['value'])).lower()}: "
                     f"taking {result.branch} → {target}", sr)
            return target
        self.log(LogLevel.INFO, f"Step '{spec.name}' completed in {_ms(sr)} ms", sr)
        return spec.next

    def render(self, step_type, name: str, value):
        """A step setting with its placeholders filled in (expressions stay as written)."""
        if name in step_type.raw_settings:
            return value
        if name in step_type.url_settings:
            return render_url(value, self.context)
        return render_value(value, self.context)

    def park(self, sr: StepRun, until: datetime) -> Outcome:
        sr.status = StepStatus.WAITING.value
        sr.resume_at = until
        self.log(LogLevel.INFO, f"Waiting in '{sr.step_name}' until {_iso(until)} UTC", sr)
        self.flush()
        moved = move(
            self.session, self.run_id, RunStatus.WAITING, only_from=[RunStatus.RUNNING],
            cursor=sr.step_key, progress_done=self.done, progress_total=self.total, heartbeat_at=utcnow(),
        )
        self.session.commit()
        if not moved:
            return Outcome(status="lost")
        return Outcome(status=RunStatus.WAITING.value, park_until=until, step_run_id=sr.id, queue=self.run.queue)

    def fail(
        self, sr: StepRun, code: str, message: str, fix: str | None, trace: str | None = None,
        detail: str | None = None, output: dict | None = None,
    ) -> Outcome:
        sr.status = StepStatus.FAILED.value
        if output is not None:
            sr.output = output
        sr.finished_at = utcnow()
        sr.error_code = code
        sr.error_message = message
        sr.suggested_fix = fix
        sr.traceback = trace
        self.log(LogLevel.ERROR, f"Step '{sr.step_name}' failed [{code}]: {message}", sr, {"error_code": code})
        if detail:
            self.log(LogLevel.ERROR, detail, sr, {"error_code": code}, technical=True)
        if trace:
            self.log(LogLevel.ERROR, trace, sr, {"error_code": code}, technical=True)
        self.flush()
        move(
            self.session, self.run_id, RunStatus.FAILED, only_from=[RunStatus.RUNNING],
            finished_at=utcnow(), error_code=code, error_message=f"Step '{sr.step_name}' failed: {message}",
            cursor=sr.step_key, progress_done=self.done, progress_total=self.total,
        )
        self.session.commit()
        return Outcome(status=RunStatus.FAILED.value)

    def stop(self, state: str, current: StepRun | None = None) -> Outcome:
        """End the walk because the run was cancelled, or because something else took it over."""
        if state == "lost":
            self.session.commit()
            return Outcome(status="lost")
        if current is not None:
            current.status = StepStatus.CANCELLED.value
            current.finished_at = utcnow()
        self.log(LogLevel.WARNING, "Run cancelled on request; completed steps stay completed")
        self.flush()
        move(
            self.session, self.run_id, RunStatus.CANCELLED, only_from=[RunStatus.RUNNING],
            finished_at=utcnow(), progress_done=self.done,
        )
        self.session.commit()
        return Outcome(status=RunStatus.CANCELLED.value)

    def complete(self) -> Outcome:
        self.log(LogLevel.INFO, f"Run completed: {self.done} step(s) done")
        self.flush()
        move(
            self.session, self.run_id, RunStatus.COMPLETED, only_from=[RunStatus.RUNNING],
            # Branches not taken do not count: a completed run reads "3 of 3 steps".
            finished_at=utcnow(), progress_done=self.done, progress_total=self.done, cursor=None,
            result={"steps": {k: v["output"] for k, v in self.context["steps"].items()}},
        )
        self.session.commit()
        return Outcome(status=RunStatus.COMPLETED.value)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def _ms(sr: StepRun) -> int:
    return round((sr.finished_at - sr.started_at).total_seconds() * 1000)
