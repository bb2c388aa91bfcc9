"""The executor: claims a run, lets the walker walk its steps and the journal record them, until it parks or ends."""
from dataclasses import dataclass

from flask import current_app
from rq.timeouts import JobTimeoutException
from sqlalchemy.orm import Session

from app.database import autocommit_engine
from app.engine.definition import END, DefinitionError
from app.engine.events import AwaitingApproval, Errored, Event, Failed, Parked
from app.engine.states import RunStatus, StepStatus
from app.engine.walker import WalkSettings, Walker, initial_context
from app.models.run import StepRun
from app.services import definitions
from app.services.execution.claims import claim_run
from app.services.execution.journal import SKIPPED, Journal, Outcome, heartbeats
from app.services.execution.queueing import schedule_approval_timeout, schedule_resume
from app.timeutil import utcnow
from app.vocabulary import LogLevel


@dataclass(frozen=True)
class ExecutorSettings(WalkSettings):
    """The walk's settings, and how often the journal commits between steps."""

    checkpoint_seconds: float = 0.25


def executor_settings() -> ExecutorSettings:
    """The executor's settings from the app's config (the job runner's time limit interrupts a step)."""
    cfg = current_app.config
    return ExecutorSettings(
        variables=dict(cfg["FLOWDESK_VARS"]),
        checkpoint_seconds=cfg["CHECKPOINT_SECONDS"],
        http_timeout=cfg["HTTP_STEP_TIMEOUT"],
        outbound=current_app.extensions["flowdesk_outbound"],
        interrupts=(JobTimeoutException,),
    )


def execute_run(session: Session, run_id: int, settings: ExecutorSettings, resume: bool = False) -> Outcome:
    """Claim a pending run (or, with `resume`, a waiting one) and walk its steps until it parks or finishes."""
    source = RunStatus.WAITING if resume else RunStatus.PENDING
    run = _claim(session, run_id, source, not resume)
    if run is None:
        return SKIPPED
    try:
        definition = definitions.of_version(session, run.version_id)
    except DefinitionError as exc:
        journal = Journal(session, run, settings.checkpoint_seconds)
        return journal.settle(Errored("INVALID_DEFINITION", str(exc), f"The workflow definition is invalid: {exc}"))
    journal = Journal(session, run, settings.checkpoint_seconds, total=len(definition.steps))
    context = initial_context(definition, settings, run_id=run.id, trigger=run.trigger, attempt=run.attempt,
                              params=run.params, record=run.context)
    walker = Walker(definition, context, settings)
    if run.cursor and run.cursor not in definition.steps:
        return journal.settle(Errored("RESUME_STEP_MISSING", f"Step '{run.cursor}' is not in this version.",
                                      f"The run cannot resume: step '{run.cursor}' is not in this version"))
    return journal.settle(_walk(journal, walker, _start(journal, walker, resume)))


def _claim(session: Session, run_id: int, source: RunStatus, starting: bool):
    """Claim the run (its first heartbeat, and its start unless it is resumed) and commit the claim at once. On
    PostgreSQL the claim is one statement outside any transaction (no BEGIN, no COMMIT: a short run's claim and its
    one-statement ending are its only two round trips)."""
    if engine := autocommit_engine(session):
        return claim_run(engine, run_id, source, now=utcnow(), starting=starting)
    run = claim_run(session, run_id, source, now=utcnow(), starting=starting)
    session.commit()
    return run


@dataclass(frozen=True)
class Start:
    """Where a walk starts: the step `key`; with `again`, the failed step run Retry step queued (run with the input
    it had); `tried`, the tries of `key` already made (automatic retries)."""

    key: str
    again: StepRun | None = None
    tried: int = 0


def _start(journal: Journal, walker: Walker, resume: bool) -> Start:
    """The step the walk starts at: after the wait it resumes from (or the failed try whose next try is due), at
    the run's cursor (a retry), or the first."""
    run = journal.run
    if resume or run.cursor:
        journal.load_completed(walker)
    if resume:
        waited = journal.finish_wait(walker)
        if waited is None:
            return Start(run.cursor or walker.first)
        if waited.status == StepStatus.FAILED:
            return Start(waited.step_key, tried=waited.retries + 1)
        return Start(walker.after(waited.step_key))
    if run.cursor:
        again = journal.step_to_retry(run.cursor)
        if again is not None:
            return Start(run.cursor, again=again)
        # A retry: the completed steps are loaded above and never run again; the walk resumes where it stopped.
        journal.log(LogLevel.INFO, f"Attempt {run.attempt} of run #{run.id} started ({run.trigger_detail}), "
                                   f"resuming at '{walker.spec(run.cursor).name}'")
        return Start(run.cursor)
    who = run.trigger_detail or run.trigger
    journal.log(LogLevel.INFO,
                f"Run #{run.id} of {walker.definition.name} started (attempt {run.attempt}, {who})")
    return Start(walker.first)


def _walk(journal: Journal, walker: Walker, start: Start) -> Event:
    """Run steps from `start` until the end or an event: a failure, a park, a cancel request, a lost run."""
    key, again, tried = start.key, start.again, start.tried
    while key != END:
        if journal.due() and (stop := journal.checkpoint()):
            return stop
        if stop := journal.limit_reached(walker.spec(key).name):
            return stop
        if again is not None:
            # Retry step reuses the input the step had, unless rendering it was what failed.
            rendered = again.error_code != "TEMPLATE_ERROR"
            sr = journal.retry_step(again)
            step = walker.prepared(key, sr.input or {}) if rendered else walker.prepare(key)
        else:
            sr = journal.begin_step(walker.spec(key), tried)
            step = walker.prepare(key)
        if isinstance(step, Failed):
            return step
        sr.input = step.input
        again, tried = None, 0
        if step.may_block:
            # Only a step that can take a while gets a "started" line, committed before it runs.
            journal.log(LogLevel.DEBUG, f"Step '{step.spec.name}' started", sr)
            if stop := journal.checkpoint():
                return stop
        result = walker.execute(step, utcnow())
        if isinstance(result, Failed):
            return walker.retry_or_fail(step.spec, result, sr.retries + 1, utcnow())
        journal.step_ran(result)
        then = walker.advance(step.spec, result)
        if isinstance(then, Parked):
            return then
        journal.complete_step(then)
        key = then.key
    return walker.completed()


def process_run(session: Session, run_id: int, resume: bool = False) -> Outcome:
    """Execute (or resume) a run while heartbeating it; a run that parks on a wait step is handed to rq-scheduler,
    and one that waits for approval gets its timeout scheduled there."""
    with heartbeats.beat(session.get_bind().engine, run_id, current_app.config["HEARTBEAT_SECONDS"]):
        outcome = execute_run(session, run_id, executor_settings(), resume=resume)
    if outcome.park_until is not None:
        schedule_resume(run_id, outcome.queue, outcome.step_run_id, outcome.park_until, outcome.timeout)
    if isinstance(outcome.event, AwaitingApproval):
        schedule_approval_timeout(run_id, outcome.queue, outcome.step_run_id, outcome.event.until)
    return outcome
