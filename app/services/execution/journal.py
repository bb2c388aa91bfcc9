"""The journal: what a worker writes about a run, buffered and committed once per checkpoint.

Step runs and log lines are buffered in the session and written at checkpoints: before a step that
may block, when `checkpoint_seconds` have passed since the last commit, and when the walk ends. A
checkpoint also heartbeats the run and reads its cancel request in the same statement. The walk ends
with an event (app.engine.events), which the journal settles the same way whatever it is: the step in
progress takes the event's step status, the event's lines are logged, and the run moves from running
to the event's status in one conditional UPDATE, committed with everything buffered. On PostgreSQL, when only new
step runs and lines are buffered (a short run's whole walk), that ending is one statement (at_once.py).
"""
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.database import built, in_transaction, insert_as_loaded
from app.engine.definition import StepSpec
from app.engine.events import Cancelled, Errored, Event, TakenOver, iso
from app.engine.states import FINISHED, STEP_FINISHED, RunStatus, StepStatus
from app.engine.steps import StepResult
from app.engine.walker import Next, Walker
from app.models.log import LogEntry
from app.models.run import Run, StepRun
from app.services.execution.at_once import settle_at_once
from app.services.execution.claims import RunSnapshot, on_the_row
from app.services.lifecycle import change_status
from app.timeutil import utcnow
from app.vocabulary import LogLevel

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What a job did with a run: `status` is the run's status afterwards, "skipped" if it was not claimed,
    or "lost" if it left this worker's hands (ended by the reconciler) during the walk."""

    status: str
    park_until: datetime | None = None
    step_run_id: int | None = None
    queue: str | None = None
    timeout: int | None = None  # the run's job timeout, for the job that resumes it
    event: Event | None = None  # how the walk ended, for what must follow the commit (a timeout to schedule)


SKIPPED = Outcome(status="skipped")


class Journal:
    """Buffers one claimed run's step runs and log lines and commits them at checkpoints."""

    def __init__(self, session: Session, run: RunSnapshot, checkpoint_seconds: float, total: int | None = None):
        self.session = session
        self.run = run
        self.checkpoint_seconds = checkpoint_seconds
        self.total = total  # steps in the definition; None when it could not be read
        self.done = run.progress_done
        self.actions = run.actions_taken  # steps this attempt has executed, counting this walk's
        self._claimed = time.monotonic()
        self.current: StepRun | None = None  # the step in progress
        self._lines: list[tuple[StepRun | None, dict]] = []
        self._new: list[StepRun] = []  # step runs begun since the last flush, not yet in the session
        self._last_commit = time.monotonic()

    def log(
        self, level: LogLevel | str, message: str, step_run: StepRun | None = None, meta=None, technical=False,
        record_key: str | None = None,
    ) -> None:
        """Buffer a log line; it carries the run's record key unless the step names another."""
        level = LogLevel(level)
        self._lines.append((step_run, {
            "run_id": self.run.id,
            "created_at": utcnow(),
            "level": level.value,
            "level_rank": level.rank,
            "message": message,
            "meta": meta,
            "technical": technical,
            "record_key": record_key or self.run.record_key,
        }))

    def flush(self) -> None:
        """Write the step runs begun since the last flush (one INSERT), changes to earlier ones, and the buffered
        log lines (one INSERT)."""
        if self._new:
            insert_as_loaded(self.session, self._new)
            self._new = []
        self.session.flush()
        if self._lines:
            rows = [{**row, "step_run_id": sr.id if sr is not None else None} for sr, row in self._lines]
            # Core's insert of the table, not the ORM's bulk insert: that splits the rows into one INSERT per
            # run of rows with the same non-NULL columns (a run's line, its steps' lines, a run's line: three).
            self.session.execute(sa.insert(LogEntry.__table__), rows)
            self._lines = []

    def due(self) -> bool:
        """Whether `checkpoint_seconds` have passed since the last commit."""
        return time.monotonic() - self._last_commit >= self.checkpoint_seconds

    def checkpoint(self) -> Event | None:
        """Commit what is buffered and heartbeat the run; an event if the walk must stop (a cancel
        request, or the run is no longer running), else None."""
        self.flush()
        progress = self._progress()
        row = self.session.execute(self.checkpoint_statement("progress_total" in progress),
                                   {"run_id": self.run.id, "now": utcnow(), **progress}).first()
        self._commit()
        if row is None:
            return TakenOver()
        return Cancelled() if row.cancel_requested_at is not None else None

    @staticmethod
    @lru_cache(maxsize=2)
    def checkpoint_statement(with_total: bool) -> sa.Update:
        """The checkpoint's UPDATE, built once: the run's heartbeat and progress, if it is still running."""
        columns = Run.__table__.c
        values = {"heartbeat_at": sa.bindparam("now", type_=columns.heartbeat_at.type),
                  "progress_done": sa.bindparam("progress_done", type_=columns.progress_done.type)}
        if with_total:
            values["progress_total"] = sa.bindparam("progress_total", type_=columns.progress_total.type)
        return (
            sa.update(Run)
            .where(Run.id == sa.bindparam("run_id", type_=columns.id.type),
                   on_the_row(Run.status == RunStatus.RUNNING.value))
            .values(**values)
            .returning(Run.cancel_requested_at)
            .execution_options(synchronize_session=False)
        )

    def begin_step(self, spec: StepSpec, retries: int = 0) -> StepRun:
        """Add the step run of a step about to run (written with the next flush); `retries` counts the tries of
        it made before (automatic retries)."""
        now = utcnow()
        self.current = built(
            StepRun, run_id=self.run.id, attempt=self.run.attempt, step_key=spec.key, step_type=spec.type,
            step_name=spec.name, status=StepStatus.RUNNING.value, scheduled_at=now, started_at=now,
            input=spec.settings, retries=retries,
        )
        self._new.append(self.current)
        self.actions += 1
        if retries:
            self.log(LogLevel.INFO, f"Step '{spec.name}': try {retries + 1}", self.current)
        return self.current

    def step_to_retry(self, key: str) -> StepRun | None:
        """The failed step run of this attempt that Retry step queued to run again, if any."""
        return self.session.scalars(
            sa.select(StepRun)
            .where(StepRun.run_id == self.run.id, StepRun.attempt == self.run.attempt, StepRun.step_key == key,
                   StepRun.status == StepStatus.QUEUED.value)
            .order_by(StepRun.id.desc())
            .limit(1)
        ).first()

    def retry_step(self, sr: StepRun) -> StepRun:
        """Run a failed step run again (Retry step): the same row, its retry count up, its error cleared."""
        now = utcnow()
        sr.status = StepStatus.RUNNING.value
        sr.retries += 1
        sr.scheduled_at = sr.started_at = now
        sr.finished_at = sr.error_code = sr.error_message = sr.suggested_fix = sr.traceback = sr.output = None
        self.current = sr
        self.actions += 1
        self.log(LogLevel.INFO, f"Retrying step '{sr.step_name}' with the same input (retry {sr.retries})", sr)
        return sr

    def step_ran(self, result: StepResult) -> None:
        """Log what the step in progress said, and keep its output."""
        sr = self.current
        for level, message, meta in result.logs:
            self.log(level, message, sr, meta, record_key=result.record_key)
        for level, message, meta in result.technical_logs:
            self.log(level, message, sr, meta, technical=True, record_key=result.record_key)
        sr.output = result.output

    def complete_step(self, then: Next) -> None:
        """The step in progress completed; `then` is where the walk goes, and why."""
        sr = self.current
        sr.status = StepStatus.COMPLETED.value
        sr.finished_at = utcnow()
        self.done += 1
        if then.branch:
            sr.branch = then.branch
            self.log(LogLevel.INFO, then.note, sr)
        else:
            ms = round((sr.finished_at - sr.started_at).total_seconds() * 1000)
            self.log(LogLevel.INFO, f"Step '{sr.step_name}' completed in {ms} ms", sr)
        self.current = None

    def load_completed(self, walker: Walker) -> None:
        """Give the walker the output of every step this run already completed (they are never run again)."""
        rows = self.session.scalars(
            sa.select(StepRun)
            .where(StepRun.run_id == self.run.id, StepRun.status == StepStatus.COMPLETED.value)
            .order_by(StepRun.id)
        )
        for sr in rows:
            walker.remember(sr.step_key, sr.output, sr.status)

    def finish_wait(self, walker: Walker) -> StepRun | None:
        """End the wait the run resumes from and return the step run that waited (None if none did): a wait step
        completes; a failed try whose next try is now due stays failed."""
        sr = self.session.scalars(
            sa.select(StepRun)
            .where(StepRun.run_id == self.run.id, StepRun.status == StepStatus.WAITING.value)
            .order_by(StepRun.id.desc())
            .limit(1)
        ).first()
        if sr is None:
            return None
        now = utcnow()
        if sr.error_code is not None:
            sr.status = StepStatus.FAILED.value
            sr.resumed_at = now
            return sr
        sr.status = StepStatus.COMPLETED.value
        sr.resumed_at = now
        sr.finished_at = now
        late = (now - sr.resume_at).total_seconds() if sr.resume_at else 0.0
        sr.output = {**(sr.output or {}), "resume_at": iso(sr.resume_at), "resumed_at": iso(now)}
        walker.remember(sr.step_key, sr.output, sr.status)
        self.done += 1
        self.log(LogLevel.INFO, f"Resumed after '{sr.step_name}' (scheduled {iso(sr.resume_at)}, {late:.1f} s late)",
                 sr)
        return sr

    def settle(self, event: Event) -> Outcome:
        """Record how the walk ended and commit: the step in progress, the event's lines, the run's move."""
        now = utcnow()
        sr = self.current
        if sr is not None and event.step_status is not None:
            sr.status = event.step_status.value
            for name, value in event.step_values().items():
                setattr(sr, name, value)
            if event.step_status in STEP_FINISHED:
                sr.finished_at = now
        for line in event.lines(self.done):
            self.log(line.level, line.message, sr if line.of_step else None, line.meta, technical=line.technical)
        if event.status is None:
            self.flush()
            self._commit()
            return Outcome(status="lost")
        values = self.ending_values(event, now)
        if self._at_once():
            moved = settle_at_once(self.session, self.run.id, event.status, values, self._new, self._lines)
            self._new, self._lines = [], []
        else:
            self.flush()
            moved = change_status(self.session, self.run.id, event.status, only_from=[RunStatus.RUNNING],
                                  **values).changed
        self._commit()
        if not moved:
            return Outcome(status="lost")
        return Outcome(status=event.status.value, park_until=event.resume_at,
                       step_run_id=sr.id if sr is not None else None, queue=self.run.queue,
                       timeout=self.run.job_timeout_seconds, event=event)

    def ending_values(self, event: Event, now: datetime) -> dict:
        """The columns of the run that `event` sets as it moves the run from running (besides its status)."""
        values = {**self._progress(), **event.run_values(self.done), "actions_taken": self.actions,
                  "executed_seconds": self.executed_seconds()}
        values["finished_at" if event.status in FINISHED else "heartbeat_at"] = now
        return values

    def _at_once(self) -> bool:
        """Whether the ending can be one statement (app/services/execution/at_once.py): on PostgreSQL, when nothing
        but new step runs and lines is waiting to be written."""
        session = self.session
        return (session.get_bind().dialect.name == "postgresql"
                and not session.new and not session.dirty and not session.deleted)

    def executed_seconds(self) -> float:
        """Seconds this attempt has been executing: earlier walks' (parked time not counted) and this one's."""
        return self.run.executed_seconds + (time.monotonic() - self._claimed)

    def limit_reached(self, next_step: str) -> Event | None:
        """An error event if the attempt used up a safety limit of its workflow before step `next_step` (its max
        actions, its max runtime), else None."""
        run = self.run
        if run.max_actions is not None and self.actions >= run.max_actions:
            message = (f"The run reached its max actions per run ({run.max_actions} steps executed) before "
                       f"'{next_step}'.")
            return Errored("LIMIT_ACTIONS", message, f"Stopped: {message}")
        if run.max_runtime_seconds is not None and self.executed_seconds() >= run.max_runtime_seconds:
            message = (f"The run reached its max runtime ({run.max_runtime_seconds} s, executed "
                       f"{self.executed_seconds():.1f} s) before '{next_step}'.")
            return Errored("LIMIT_RUNTIME", message, f"Stopped: {message}")
        return None

    def _progress(self) -> dict:
        if self.total is None:
            return {"progress_done": self.done}
        return {"progress_done": self.done, "progress_total": self.total}

    def _commit(self) -> None:
        # A short run's one-statement ending (on PostgreSQL) leaves no transaction to commit.
        if in_transaction(self.session):
            self.session.commit()
        self._last_commit = time.monotonic()


class Heartbeats:
    """One side thread per process heartbeats every run this process is executing, in one UPDATE per beat, so a long
    step never looks lost. The thread starts with the first run and lives as long as the process (a worker runs one
    run after another; a thread per run cost more than a short run's steps). It uses connections of its own, never
    a journal's Session. A process forked from one with a thread (a work horse) starts its own."""

    def __init__(self):
        self._lock = threading.Lock()
        self._runs: dict[int, sa.Engine] = {}
        self._every = 5.0
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = None

    def beating(self) -> set[int]:
        """The runs this process heartbeats now."""
        with self._lock:
            return set(self._runs)

    @contextmanager
    def beat(self, engine: sa.Engine, run_id: int, every: float) -> Iterator[None]:
        """Heartbeat run `run_id` at least every `every` seconds while the block runs; it stops when the block ends,
        however it ends."""
        with self._lock:
            self._runs[run_id] = engine
            if every < self._every:
                self._wake.set()  # a sleeping thread takes the shorter interval at once
            self._every = every
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._wake = threading.Event()
                self._thread = threading.Thread(target=self._beat_forever, name="heartbeat", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._runs.pop(run_id, None)

    def _beat_forever(self) -> None:
        while True:
            self._wake.wait(self._every)
            self._wake.clear()
            with self._lock:
                by_engine: dict[sa.Engine, list[int]] = {}
                for run_id, engine in self._runs.items():
                    by_engine.setdefault(engine, []).append(run_id)
            for engine, run_ids in by_engine.items():
                try:
                    with engine.begin() as connection:
                        connection.execute(
                            sa.update(Run)
                            .where(Run.id.in_(run_ids), Run.status == RunStatus.RUNNING.value)
                            .values(heartbeat_at=utcnow())
                            .execution_options(synchronize_session=False)
                        )
                except Exception:  # a missed beat is not fatal: the next one tries again
                    log.warning("heartbeat of runs %s failed", run_ids, exc_info=True)


heartbeats = Heartbeats()
