"""How a walk over a run's steps ends: events the journal records, each saying what it writes.

An event names the run's status afterwards, what the step in progress becomes, the run's columns
that change with it and the job log lines that say so. The journal applies any event the same way
(one flush, one conditional move from running, one commit), so a new ending (a retry's backoff, an
approval, a rejection) is a new event class here, not another hand-written ending in the journal.
"""
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from app.engine.states import RunStatus, StepStatus
from app.vocabulary import LogLevel


@dataclass(frozen=True)
class Line:
    """A job log line an event writes; `of_step` lines belong to the step in progress."""

    level: LogLevel
    message: str
    of_step: bool = True
    technical: bool = False
    meta: dict | None = None


class Event:
    """The end of a walk. `status` None means the run is no longer this worker's to move."""

    status: ClassVar[RunStatus | None] = None
    step_status: ClassVar[StepStatus | None] = None  # what the step in progress becomes, if one is

    @property
    def resume_at(self) -> datetime | None:
        """When a parked run should be resumed by rq-scheduler (None: nothing to schedule)."""
        return None

    def step_values(self) -> dict:
        """Columns of the step in progress that change with the event (besides its status and finish time)."""
        return {}

    def run_values(self, done: int) -> dict:
        """Columns of the run that change with its status (besides progress and times), `done` steps done."""
        return {}

    def lines(self, done: int) -> list[Line]:
        """The job log lines that say what happened."""
        return []


@dataclass(frozen=True)
class Completed(Event):
    """Every step on the run's path finished; `result` holds each step's output."""

    result: dict
    status: ClassVar[RunStatus] = RunStatus.COMPLETED

    def run_values(self, done: int) -> dict:
        # Branches not taken do not count: a completed run reads "3 of 3 steps".
        return {"progress_total": done, "cursor": None, "result": self.result}

    def lines(self, done: int) -> list[Line]:
        return [Line(LogLevel.INFO, f"Run completed: {done} step(s) done", of_step=False)]


@dataclass(frozen=True)
class Failed(Event):
    """A step failed: the run fails there, and a retry resumes at it (the cursor)."""

    step_key: str
    step_name: str
    code: str
    message: str
    suggested_fix: str | None = None
    traceback: str | None = None
    detail: str | None = None  # what went wrong underneath, for support
    output: dict | None = None  # what the step got before it failed
    status: ClassVar[RunStatus] = RunStatus.FAILED
    step_status: ClassVar[StepStatus] = StepStatus.FAILED

    def step_values(self) -> dict:
        values = {"error_code": self.code, "error_message": self.message, "suggested_fix": self.suggested_fix,
                  "traceback": self.traceback}
        if self.output is not None:
            values["output"] = self.output
        return values

    def run_values(self, done: int) -> dict:
        return {"error_code": self.code, "error_message": f"Step '{self.step_name}' failed: {self.message}",
                "cursor": self.step_key}

    def lines(self, done: int) -> list[Line]:
        meta = {"error_code": self.code}
        return [Line(LogLevel.ERROR, f"Step '{self.step_name}' failed [{self.code}]: {self.message}", meta=meta),
                *self.technical_lines(meta)]

    def technical_lines(self, meta: dict) -> list[Line]:
        """What went wrong underneath and the stack trace, for support."""
        return [Line(LogLevel.ERROR, text, technical=True, meta=meta) for text in (self.detail, self.traceback) if text]


@dataclass(frozen=True)
class RetryLater(Event):
    """A step failed with an error its retry policy covers, and tries remain: the failed try is kept (its error,
    and when the next try is due), and the run waits, holding no worker, until rq-scheduler resumes it at `until`
    to try the step again."""

    failure: Failed
    tried: int  # the tries made so far, this one included
    max_attempts: int
    until: datetime
    failed_at: datetime | None = None  # when the try failed, for the log's "in N s"
    status: ClassVar[RunStatus] = RunStatus.WAITING
    step_status: ClassVar[StepStatus] = StepStatus.WAITING

    @property
    def resume_at(self) -> datetime:
        return self.until

    def step_values(self) -> dict:
        return {**self.failure.step_values(), "resume_at": self.until, "finished_at": self.failed_at}

    def run_values(self, done: int) -> dict:
        return {"cursor": self.failure.step_key}

    def lines(self, done: int) -> list[Line]:
        f = self.failure
        seconds = round(max(0.0, (self.until - self.failed_at).total_seconds()), 3) if self.failed_at else 0.0
        meta = {"error_code": f.code, "try": self.tried, "max_attempts": self.max_attempts,
                "next_try_at": iso(self.until)}
        lines = [Line(LogLevel.WARNING, f"Step '{f.step_name}' failed [{f.code}]: {f.message}; "
                                        f"try {self.tried + 1} of {self.max_attempts} in {seconds:g} s", meta=meta)]
        return lines + f.technical_lines(meta)


@dataclass(frozen=True)
class Parked(Event):
    """A wait step: the run waits, holding no worker, until rq-scheduler resumes it at `until`."""

    step_key: str
    step_name: str
    until: datetime
    status: ClassVar[RunStatus] = RunStatus.WAITING
    step_status: ClassVar[StepStatus] = StepStatus.WAITING

    @property
    def resume_at(self) -> datetime:
        return self.until

    def step_values(self) -> dict:
        return {"resume_at": self.until}

    def run_values(self, done: int) -> dict:
        return {"cursor": self.step_key}

    def lines(self, done: int) -> list[Line]:
        return [Line(LogLevel.INFO, f"Waiting in '{self.step_name}' until {iso(self.until)} UTC")]


@dataclass(frozen=True)
class Cancelled(Event):
    """Someone asked the run to stop; the worker stops between steps."""

    status: ClassVar[RunStatus] = RunStatus.CANCELLED
    step_status: ClassVar[StepStatus] = StepStatus.CANCELLED

    def lines(self, done: int) -> list[Line]:
        return [Line(LogLevel.WARNING, "Run cancelled on request; completed steps stay completed", of_step=False)]


@dataclass(frozen=True)
class Errored(Event):
    """The engine cannot run the run at all (an invalid definition)."""

    code: str
    message: str
    line: str
    status: ClassVar[RunStatus] = RunStatus.ERROR

    def run_values(self, done: int) -> dict:
        return {"error_code": self.code, "error_message": self.message}

    def lines(self, done: int) -> list[Line]:
        return [Line(LogLevel.ERROR, self.line, of_step=False)]


@dataclass(frozen=True)
class TakenOver(Event):
    """The run left running under this worker (the reconciler ended it): write what is buffered, move nothing."""


def iso(value: datetime | None) -> str | None:
    """A naive UTC time as the job log shows it, to the second."""
    return value.isoformat(timespec="seconds") if value else None


@dataclass(frozen=True)
class AwaitingApproval(Parked):
    """An approval step: the run parks, holding no worker, until one of `roles` approves or rejects it, or
    `until` passes (then a scheduled job rejects it with APPROVAL_TIMEOUT). A park that a person ends, so
    nothing resumes it by time: `resume_at` is None and `until` is the deadline."""

    message: str = ""
    roles: tuple[str, ...] = ()
    allow_self_approval: bool = False
    status: ClassVar[RunStatus] = RunStatus.WAITING_FOR_APPROVAL
    step_status: ClassVar[StepStatus] = StepStatus.WAITING_FOR_APPROVAL

    @property
    def resume_at(self) -> None:
        return None

    def step_values(self) -> dict:
        return {"approval_message": self.message, "approval_roles": ",".join(self.roles),
                "approval_self_allowed": self.allow_self_approval, "approval_due_at": self.until}

    def lines(self, done: int) -> list[Line]:
        return [Line(LogLevel.INFO, f"Waiting in '{self.step_name}' for a decision by {', '.join(self.roles)} "
                                    f"until {iso(self.until)} UTC: {self.message}")]
