"""Run and step statuses, and the run transition table (the one place that says which moves are legal)."""
from enum import Enum


class RunStatus(str, Enum):
    PENDING = "pending"  # committed and queued, waiting for a worker to claim it
    RUNNING = "running"  # a worker is executing its steps
    WAITING = "waiting"  # parked on a wait step; rq-scheduler resumes it
    WAITING_FOR_APPROVAL = "waiting_for_approval"  # parked until someone approves or rejects a step
    COMPLETED = "completed"  # every step on its path finished
    FAILED = "failed"  # a step failed
    CANCELLED = "cancelled"  # stopped on request
    REJECTED = "rejected"  # an approval step was rejected
    ERROR = "error"  # the engine could not run it (bad definition, lost worker)

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


ACTIVE = frozenset({RunStatus.PENDING, RunStatus.RUNNING, RunStatus.WAITING, RunStatus.WAITING_FOR_APPROVAL})
FINISHED = frozenset(
    {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.REJECTED, RunStatus.ERROR}
)
CANCELLABLE = frozenset({RunStatus.PENDING, RunStatus.RUNNING, RunStatus.WAITING, RunStatus.WAITING_FOR_APPROVAL})

TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.PENDING: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED, RunStatus.ERROR}),
    RunStatus.RUNNING: frozenset(
        {
            RunStatus.COMPLETED,
            RunStatus.FAILED,
            RunStatus.CANCELLED,
            RunStatus.ERROR,
            RunStatus.WAITING,
            RunStatus.WAITING_FOR_APPROVAL,
        }
    ),
    RunStatus.WAITING: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED, RunStatus.ERROR}),
    RunStatus.WAITING_FOR_APPROVAL: frozenset(
        {RunStatus.RUNNING, RunStatus.REJECTED, RunStatus.CANCELLED, RunStatus.ERROR}
    ),
    # A retry is an explicit new attempt, the only way out of a finished state.
    RunStatus.FAILED: frozenset({RunStatus.PENDING}),
    RunStatus.ERROR: frozenset({RunStatus.PENDING}),
    RunStatus.COMPLETED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
    RunStatus.REJECTED: frozenset(),
}


def sources_of(target: RunStatus) -> frozenset[RunStatus]:
    """Every status a run may move to `target` from."""
    return frozenset(source for source, targets in TRANSITIONS.items() if target in targets)


def can_move(source: RunStatus | str, target: RunStatus | str) -> bool:
    return RunStatus(target) in TRANSITIONS[RunStatus(source)]


class StepStatus(str, Enum):
    RUNNING = "running"  # the worker is executing it
    COMPLETED = "completed"  # finished; never re-run
    FAILED = "failed"  # raised an error; the run failed here
    WAITING = "waiting"  # a wait step whose resume time has not come
    CANCELLED = "cancelled"  # the run was cancelled while this step waited or ran
    QUEUED = "queued"  # a failed step queued to run again with the same input (Retry step)

    @property
    def label(self) -> str:
        return self.value.capitalize()


# A step in one of these never changes again.
STEP_FINISHED = frozenset({StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.CANCELLED})
