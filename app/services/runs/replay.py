"""Replaying runs: a finished run's inputs (optionally edited) run again as a new run on the current published
version, now or at a set time, linked to its source both ways."""
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy.orm import Session

from app.engine import strictjson
from app.engine.definition import Definition
from app.engine.params import ParamErrors, coerce_params
from app.engine.states import RunStatus
from app.models import LogEntry, Run, User, WorkflowVersion
from app.security import Capability, can
from app.services import audit
from app.services.audit import AuditAction, AuditEntity
from app.services.dispatch import after_commit
from app.services.errors import Conflict, Invalid, PermissionDenied, ServiceError
from app.services.execution.queueing import enqueue_execute, schedule_execute
from app.services.runs.start import check_record, definition_of, pending_run
from app.timeutil import utcnow
from app.vocabulary import LogLevel, Trigger

# A replay repeats what a run did: one that ended by a person's decision (cancelled, rejected) or by the engine
# (error) is recovered by retrying it, not replaying it.
REPLAYABLE = frozenset({RunStatus.COMPLETED, RunStatus.FAILED})
MAX_AHEAD = timedelta(days=366)  # rq-scheduler keeps a replay set for later at most this far ahead
AT_FORMAT = "a date and time like 2026-12-01T09:30 (UTC, or with an offset such as +02:00)"


@dataclass(frozen=True)
class ReplayPlan:
    """What a replay of `source` reuses and what it runs, shown before the user confirms."""

    source: Run
    version: WorkflowVersion  # the workflow's current published version, which the replay runs
    definition: Definition
    params: dict  # the source's values of the parameters the current version declares
    dropped: tuple[str, ...]  # the source's parameters the current version no longer declares

    @property
    def version_changed(self) -> bool:
        """Whether the replay runs another version than its source ran."""
        return self.version.id != self.source.version_id

    @property
    def record(self) -> dict | None:
        return self.source.context

    @property
    def selected_keys(self) -> list | None:
        return self.source.selected_keys


def replay_refusal(source: Run, user: User) -> ServiceError | None:
    """Why `user` may not replay `source` now, as the error the replay would raise; None when they may."""
    if not can(user, Capability.REPLAY_RUN):
        return PermissionDenied("Your role cannot replay runs.")
    workflow = source.workflow
    if workflow.allowed_roles and user.role not in workflow.allowed_roles and not can(user, Capability.VIEW_DRAFTS):
        return PermissionDenied("Your role is not allowed to run this workflow.")
    status = RunStatus(source.status)
    if source.is_active:
        return Conflict(f"Run #{source.id} is still {status.label.lower()}; replay it once it has finished.")
    if status not in REPLAYABLE:
        return Conflict(f"Only completed or failed runs can be replayed; run #{source.id} is {status.label.lower()}.")
    if not workflow.is_published:
        return Conflict("This workflow is a draft; publish it before replaying its runs.")
    if workflow.is_archived:
        return Conflict("This workflow is archived; its runs can no longer be replayed.")
    if not workflow.enabled:
        return Conflict("This workflow is disabled; enable it before replaying its runs.")
    return None


def plan_replay(session: Session, source: Run, user: User) -> ReplayPlan:
    """Check that `user` may replay `source` now and say what the replay would reuse and run; writes nothing.
    Raises PermissionDenied or Conflict (an active or cancelled source, a draft or disabled workflow)."""
    refusal = replay_refusal(source, user)
    if refusal is not None:
        raise refusal
    version = source.workflow.published_version
    definition = definition_of(version)
    declared = {spec.name for spec in definition.params}
    original = source.params or {}
    return ReplayPlan(
        source=source, version=version, definition=definition,
        params={name: value for name, value in original.items() if name in declared},
        dropped=tuple(sorted(set(original) - declared)),
    )


def replay_run(
    session: Session,
    source: Run,
    user: User,
    *,
    params: dict | None = None,
    record: dict | str | None = None,
    at: datetime | str | None = None,
    from_form: bool = False,
    trigger: Trigger = Trigger.MANUAL,
) -> Run:
    """Add a pending run that replays `source`: its params, selected keys and context record unless edited, on
    the current published version, queued like any run (now, or by rq-scheduler at `at`) once the caller commits.

    `params` are edits: from the API they are laid over the source's values (null clears one); from the Run form
    (`from_form`) they are every field of the form. `record` replaces the context record (a dict, or JSON text
    from the form; None or blank keeps the source's). Raises PermissionDenied, Conflict, or Invalid naming each
    bad parameter, `record` / `record.key`, and `at`.
    """
    plan = plan_replay(session, source, user)
    errors: dict[str, str] = {}
    values = {}
    try:
        values = coerce_params(plan.definition.params, _edited(plan.params, params, from_form), from_form=from_form)
    except ParamErrors as exc:
        errors.update(exc.errors)
    context = plan.record
    record_key = None
    try:
        context = _record(record, plan.record, from_form)
        record_key = check_record(context)
    except ParamErrors as exc:
        errors.update(exc.errors)
    not_before = None
    try:
        not_before = parse_at(at)
    except ParamErrors as exc:
        errors.update(exc.errors)
    if errors:
        raise Invalid("Some values of the replay are invalid.", fields=errors)
    workflow = source.workflow
    run = pending_run(workflow, plan.version.id, plan.definition, user, Trigger(trigger),
                      f"replay of #{source.id} by {user.email}", params=values, context=context,
                      record_key=record_key, selected_keys=source.selected_keys, replay_of_id=source.id,
                      not_before=not_before)
    session.add(run)
    session.flush()
    when = f"; scheduled for {not_before:%Y-%m-%d %H:%M:%S} UTC" if not_before else ""
    session.add(LogEntry.line(run.id, LogLevel.INFO, f"Replay of run #{source.id} ({source.version.label}) on "
                                                     f"{plan.version.label}, by {user.email}{when}"))
    changes = {"replay_of_id": [None, source.id], "version": [source.version.label, plan.version.label]}
    if values != (source.params or {}):
        changes["params"] = [source.params, values]
    if context != source.context:
        changes["context"] = [source.context, context]
    if not_before:
        changes["not_before"] = [None, not_before.isoformat(timespec="seconds")]
    audit.record(session, user, AuditEntity.RUN, run.id, AuditAction.REPLAY_RUN, changes)
    run_id, queue, attempt, timeout = run.id, run.queue, run.attempt, run.job_timeout_seconds
    if not_before is None:
        after_commit(session, lambda: enqueue_execute(run_id, queue, attempt, timeout))
    else:
        after_commit(session, lambda: schedule_execute(run_id, queue, attempt, not_before, timeout))
    return run


def _edited(original: dict, edits, from_form: bool):
    """The raw parameter values to check: the form's fields as they are, or the API's edits over the source's."""
    if edits is None:
        return dict(original)
    if from_form or not isinstance(edits, dict):
        return edits  # coerce_params says what is wrong with a body's `params` that is not an object
    return {**original, **edits}


def _record(edit, original: dict | None, from_form: bool) -> dict | None:
    """The replay's context record: the source's unless `edit` gives one (JSON text from the form)."""
    if edit is None or (from_form and isinstance(edit, str) and not edit.strip()):
        return original
    if from_form and isinstance(edit, str):
        try:
            edit = strictjson.loads(edit)
        except strictjson.JsonRejected as exc:
            raise ParamErrors({"record": f"must be valid JSON ({exc.path or 'the value'} {exc.message})"}) from None
    return edit


def parse_at(value, now: datetime | None = None) -> datetime | None:
    """When a replay set for later should start, as naive UTC; None for now. ParamErrors names `at` when it is not
    a date and time, is not in the future, or is more than a year ahead. Text without an offset is UTC."""
    if value is None:
        return None
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise ParamErrors({"at": f"is required for a replay set for later: {AT_FORMAT}"})
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise ParamErrors({"at": f"must be {AT_FORMAT}"}) from None
    else:
        raise ParamErrors({"at": f"must be text: {AT_FORMAT}"})
    if when.tzinfo is not None:
        try:
            when = when.astimezone(timezone.utc).replace(tzinfo=None)
        except OverflowError:
            raise ParamErrors({"at": f"must be {AT_FORMAT}"}) from None
    now = now or utcnow()
    if when <= now:
        raise ParamErrors({"at": f"must be in the future (it is {now:%Y-%m-%d %H:%M} UTC now)"})
    if when - now > MAX_AHEAD:
        raise ParamErrors({"at": "must be within a year from now"})
    return when
