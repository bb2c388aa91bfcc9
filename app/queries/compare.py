"""Two runs side by side (a run and its replay): what differs in their params, version and definition, steps,
error and result, for the compare page."""
import json
from dataclasses import dataclass

from app.engine.diff import DiffLine, unified_lines
from app.models import Run, StepRun

MAX_DIFF_LINES = 400  # a definition diff longer than this is cut (the versions page shows whole definitions)


@dataclass(frozen=True)
class ValueRow:
    """One parameter of both runs, as JSON text (None when the run has no such parameter)."""

    name: str
    left: str | None
    right: str | None

    @property
    def changed(self) -> bool:
        return self.left != self.right


@dataclass(frozen=True)
class StepPair:
    """The same step (and item) in both runs: each run's latest step run of it, None where it never ran."""

    key: str
    item_key: str | None
    name: str
    left: StepRun | None
    right: StepRun | None

    @property
    def changed(self) -> bool:
        if self.left is None or self.right is None:
            return True
        return (self.left.status, self.left.output, self.left.error_code) != (
            self.right.status, self.right.output, self.right.error_code)


@dataclass(frozen=True)
class Comparison:
    left: Run  # the source when one replays the other
    right: Run
    params: list[ValueRow]
    steps: list[StepPair]
    definition_diff: list[DiffLine]
    diff_cut: bool

    @property
    def is_replay(self) -> bool:
        """Whether the right-hand run replays the left-hand one."""
        return self.right.replay_of_id == self.left.id

    @property
    def version_changed(self) -> bool:
        return self.left.version_id != self.right.version_id

    @property
    def record_changed(self) -> bool:
        return self.left.context != self.right.context

    @property
    def result_changed(self) -> bool:
        return self.left.result != self.right.result

    @property
    def error_changed(self) -> bool:
        return (self.left.error_code, self.left.error_message) != (self.right.error_code, self.right.error_message)


def compare_runs(first: Run, second: Run) -> Comparison:
    """Compare two runs; a source is always put on the left of its replay."""
    left, right = (second, first) if first.replay_of_id == second.id else (first, second)
    diff, cut = _definition_diff(left, right)
    return Comparison(left=left, right=right, params=_params(left.params or {}, right.params or {}),
                      steps=_steps(left.steps, right.steps), definition_diff=diff, diff_cut=cut)


def _json(value) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def _params(left: dict, right: dict) -> list[ValueRow]:
    names = list(left) + [name for name in right if name not in left]
    return [ValueRow(name, _json(left[name]) if name in left else None, _json(right[name]) if name in right else None)
            for name in names]


def _latest(steps: list[StepRun]) -> dict[tuple[str | None, str], StepRun]:
    latest: dict[tuple[str | None, str], StepRun] = {}
    for step in steps:  # in id order: a later attempt of the same step replaces the earlier one
        latest[(step.item_key, step.step_key)] = step
    return latest


def _steps(left_steps: list[StepRun], right_steps: list[StepRun]) -> list[StepPair]:
    left, right = _latest(left_steps), _latest(right_steps)
    keys = list(left) + [key for key in right if key not in left]
    pairs = []
    for key in keys:
        one, other = left.get(key), right.get(key)
        name = (one or other).step_name
        pairs.append(StepPair(key=key[1], item_key=key[0], name=name, left=one, right=other))
    return pairs


def _definition_diff(left: Run, right: Run) -> tuple[list[DiffLine], bool]:
    """A unified diff of the two versions' definitions as pretty JSON; empty when both ran the same version."""
    if left.version_id == right.version_id:
        return [], False
    lines = unified_lines(left.version.definition, right.version.definition, left.version.label,
                          right.version.label, context=2)
    return lines[:MAX_DIFF_LINES], len(lines) > MAX_DIFF_LINES
