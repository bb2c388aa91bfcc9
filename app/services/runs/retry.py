"""Retrying a failed run: a new attempt of the same run that reuses what already completed.

The plan comes first and says, step by step, what the attempt will do: a step that completed in an earlier
attempt is reused (its output feeds the placeholders, it is never executed again), the step the run failed at
runs again, and the steps after it run when the walk reaches them. The attempt runs the current published version
when every reused step and the resume step still exist in it with the same type; otherwise it runs the version of
the attempt before, and the plan says why.
"""
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.engine.definition import END, Definition
from app.engine.states import RunStatus, StepStatus
from app.models import LogEntry, Run, RunAttempt, StepRun, User, WorkflowVersion
from app.security import Capability, can
from app.services.audit import AuditAction
from app.services.dispatch import after_commit
from app.services.errors import Conflict, PermissionDenied
from app.services.execution.queueing import enqueue_execute
from app.services.lifecycle import change_status
from app.services.runs.start import definition_of, limits_of
from app.vocabulary import LogLevel

RETRYABLE = frozenset({RunStatus.FAILED, RunStatus.ERROR})


class StepAction:
    REUSED = "reused"  # completed in an earlier attempt: its output is used, it is not executed
    AGAIN = "runs again"  # the step the run stopped at
    RUNS = "runs"  # not reached yet: runs when the walk gets there


@dataclass(frozen=True)
class PlannedStep:
    key: str
    name: str
    type: str
    action: str  # a StepAction
    completed_in: int | None = None  # the attempt a reused step completed in

    @property
    def label(self) -> str:
        if self.action == StepAction.REUSED:
            return f"reused (completed in attempt {self.completed_in})"
        return self.action


@dataclass(frozen=True)
class RetryPlan:
    """What retrying `run_id` would do: attempt `attempt`, resuming at `resume_at`, running `version_number`."""

    run_id: int
    attempt: int
    resume_at: str  # the step key the attempt starts at
    version_id: int
    version_number: int
    steps: tuple[PlannedStep, ...]
    version_note: str | None = None  # why the attempt keeps an older version, when it does

    @property
    def reused(self) -> tuple[PlannedStep, ...]:
        return tuple(s for s in self.steps if s.action == StepAction.REUSED)

    def as_json(self) -> dict:
        return {
            "attempt": self.attempt,
            "resume_at": self.resume_at,
            "version": self.version_number,
            "version_note": self.version_note,
            "steps": [{"key": s.key, "name": s.name, "type": s.type, "action": s.action,
                       "completed_in_attempt": s.completed_in} for s in self.steps],
        }


def plan_retry(session: Session, run: Run) -> RetryPlan:
    """The plan for retrying `run`; Conflict (with the reason) when it cannot be retried."""
    status = RunStatus(run.status)
    if status not in RETRYABLE:
        raise Conflict("Only a failed run or one that ended in error can be retried; "
                       f"this run is {status.label.lower()}.")
    workflow = run.workflow
    if not workflow.is_published:
        raise Conflict("This workflow is a draft; publish it before retrying its runs.")
    if workflow.is_archived:
        raise Conflict("This workflow is archived; its runs can no longer be retried.")
    if not workflow.enabled:
        raise Conflict("This workflow is disabled; enable it before retrying its runs.")
    steps = session.scalars(sa.select(StepRun).where(StepRun.run_id == run.id).order_by(StepRun.id)).all()
    completed = {sr.step_key: sr for sr in steps if sr.status == StepStatus.COMPLETED}
    previous = definition_of(run.version)
    resume_at = _resume_step(run, previous, steps, completed)
    version, note = _version_for(run, previous, workflow.published_version, completed, resume_at)
    definition = definition_of(version)
    planned = tuple(
        PlannedStep(spec.key, spec.name, spec.type, StepAction.REUSED, completed[spec.key].attempt)
        if spec.key in completed and spec.key != resume_at
        else PlannedStep(spec.key, spec.name, spec.type,
                         StepAction.AGAIN if spec.key == resume_at else StepAction.RUNS)
        for spec in definition.steps.values()
    )
    return RetryPlan(run.id, run.attempt + 1, resume_at, version.id, version.number, planned, note)


def retry_run(session: Session, run: Run, user: User) -> RetryPlan:
    """Queue attempt N+1 of a failed run as the plan says; the caller commits (which enqueues it)."""
    _check_may_run(run, user)
    plan = plan_retry(session, run)
    earlier = RunAttempt(
        run_id=run.id, number=run.attempt, version_id=run.version_id, trigger_detail=run.trigger_detail,
        status=run.status, started_at=run.started_at, finished_at=run.finished_at, error_code=run.error_code,
        error_message=run.error_message,
    )
    old_version = run.version.number
    limits = limits_of(run.workflow)
    resume_name = next(s.name for s in plan.steps if s.key == plan.resume_at)
    change = change_status(
        session, run.id, RunStatus.PENDING, only_from=RETRYABLE, actor=user, action=AuditAction.RETRY_RUN,
        message=(f"Attempt {plan.attempt} queued by {user.email}: resumes at '{resume_name}' on "
                 f"v{plan.version_number}, reusing {len(plan.reused)} completed step(s)"),
        attempt=plan.attempt, version_id=plan.version_id, cursor=plan.resume_at,
        trigger_detail=f"retry by {user.email}", triggered_by_id=user.id, started_at=None, finished_at=None,
        heartbeat_at=None, cancel_requested_at=None, cancelled_by_id=None, error_code=None, error_message=None,
        result=None,
        progress_done=len(plan.reused), progress_total=len(plan.steps),
        # A new attempt runs under the workflow's settings now, with its runtime and actions counted afresh.
        **limits, executed_seconds=0.0, actions_taken=0,
    )
    if not change.changed:
        raise Conflict(f"The run is {change.new.label.lower()} now; only a failed run can be retried.")
    session.add(earlier)
    if old_version != plan.version_number:
        session.add(LogEntry.line(run.id, LogLevel.INFO, f"Attempt {plan.attempt} runs v{plan.version_number} "
                                                         f"(attempt {plan.attempt - 1} ran v{old_version})"))
    run_id, queue, attempt, timeout = run.id, run.queue, plan.attempt, limits["job_timeout_seconds"]
    session.expire(run)
    after_commit(session, lambda: enqueue_execute(run_id, queue, attempt, timeout))
    return plan


def _resume_step(run: Run, definition: Definition, steps: list[StepRun], completed: dict[str, StepRun]) -> str:
    """Where the next attempt starts: the step the run failed at (its cursor, or the step that was running when
    its worker was lost), else the step after the last one that completed, else the first."""
    if run.cursor and run.cursor in definition.steps:
        return run.cursor
    current = [sr for sr in steps if sr.attempt == run.attempt]
    for sr in reversed(current):
        if sr.status in (StepStatus.FAILED, StepStatus.RUNNING) and sr.step_key in definition.steps:
            return sr.step_key
    for sr in reversed(steps):
        if sr.step_key in completed and completed[sr.step_key] is sr:
            target = _went_to(definition, sr)
            if target != END:
                return target
            break
    return definition.first


def _went_to(definition: Definition, sr: StepRun) -> str:
    """The step a completed step handed over to (a condition's recorded branch target, else its `next`)."""
    if sr.branch and "→" in sr.branch:
        return sr.branch.rsplit("→", 1)[1].strip()
    spec = definition.steps.get(sr.step_key)
    return spec.next if spec else END


def _version_for(run: Run, previous: Definition, published: WorkflowVersion | None, completed: dict[str, StepRun],
                 resume_at: str) -> tuple[WorkflowVersion, str | None]:
    """The current published version when the reused steps and the resume step fit it, else the run's own."""
    if published is None or published.id == run.version_id:
        return run.version, None
    current = definition_of(published)
    needed = [resume_at, *(key for key in completed if key != resume_at)]
    for key in needed:
        spec = current.steps.get(key)
        name = previous.steps[key].name if key in previous.steps else key
        if spec is None:
            return run.version, (f"Runs v{run.version.number} again, not the published v{published.number}: "
                                 f"step '{name}' is not in v{published.number}.")
        if key in previous.steps and spec.type != previous.steps[key].type:
            return run.version, (f"Runs v{run.version.number} again, not the published v{published.number}: "
                                 f"step '{name}' is a {spec.type} step in v{published.number}, a "
                                 f"{previous.steps[key].type} step before.")
    return published, None



def retry_step(session: Session, run: Run, step_key: str, user: User) -> StepRun:
    """Queue the step a failed run stopped at to run again in the same attempt, with the input it had (its retry
    count goes up; the run's version does not change); if it succeeds the run continues from the next step. The
    caller commits (which enqueues it). Conflict when the run did not fail, or at another step."""
    _check_may_run(run, user)
    status = RunStatus(run.status)
    if status not in RETRYABLE:
        raise Conflict(f"Only a step of a failed run can be retried; this run is {status.label.lower()}.")
    failed = session.scalars(
        sa.select(StepRun).where(StepRun.run_id == run.id, StepRun.attempt == run.attempt)
        .order_by(StepRun.id.desc()).limit(1)
    ).first()
    if failed is None or failed.status != StepStatus.FAILED:
        raise Conflict("This run did not stop at a failed step; retry the run instead.")
    if failed.step_key != step_key:
        raise Conflict(f"Only the step the run failed at ('{failed.step_name}') can be retried on its own.")
    change = change_status(
        session, run.id, RunStatus.PENDING, only_from=RETRYABLE, actor=user, action=AuditAction.RETRY_STEP,
        message=f"Step '{failed.step_name}' queued to run again by {user.email} (retry {failed.retries + 1})",
        cursor=step_key, finished_at=None, heartbeat_at=None, cancel_requested_at=None, cancelled_by_id=None,
        error_code=None, error_message=None, result=None,
    )
    if not change.changed:
        raise Conflict(f"The run is {change.new.label.lower()} now; only a failed run's step can be retried.")
    failed.status = StepStatus.QUEUED.value
    run_id, queue, attempt, timeout = run.id, run.queue, run.attempt, run.job_timeout_seconds
    session.expire(run)
    after_commit(session, lambda: enqueue_execute(run_id, queue, attempt, timeout))
    return failed


def _check_may_run(run: Run, user: User) -> None:
    if not can(user, Capability.RUN_WORKFLOW):
        raise PermissionDenied("Your role cannot run workflows, so it cannot retry them.")
    if run.workflow.allowed_roles and user.role not in run.workflow.allowed_roles and not can(
            user, Capability.VIEW_DRAFTS):
        raise PermissionDenied("Your role is not allowed to run this workflow.")
