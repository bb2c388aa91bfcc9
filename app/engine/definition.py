"""Workflow definitions: the JSON shape, its validation, and the step graph."""
import re
from dataclasses import dataclass, field
from typing import Any

from app.engine.expressions import check_template
from app.engine.limits import MAX_NODES, check_limits
from app.engine.params import ParamSpec, parse_specs
from app.engine.retry import RetryPolicy, parse_retry
from app.engine.steps import STEP_TYPES
from app.vocabulary import KINDS, ROLES, TRIGGERS, Trigger, WorkflowKind

END = "end"
KEY_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,79}$")
RESERVED_KEYS = frozenset({"new"})  # /workflows/new is the New workflow page, so no workflow can be reached there
STEP_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,79}$")
STEP_FIELDS = {"key", "type", "name", "with", "next", "then", "else", "description", "retry"}
TOP_FIELDS = {"key", "name", "description", "kind", "queue", "params", "steps", "trigger", "allowed_roles", "settings"}


@dataclass(frozen=True)
class StepSpec:
    key: str
    type: str
    name: str
    settings: dict
    next: str  # where the step goes when it finishes (the following step, its `next`, or "end")
    then: str | None = None
    otherwise: str | None = None
    retry: RetryPolicy | None = None  # automatic retries of this step when it fails


@dataclass
class Definition:
    key: str
    name: str
    description: str
    kind: str
    queue: str
    params: list[ParamSpec]
    steps: dict[str, StepSpec]
    first: str
    raw: dict = field(repr=False, default_factory=dict)

    def successors(self, step: StepSpec) -> list[str]:
        if step.type == "condition":
            return [step.then or step.next, step.otherwise or step.next]
        return [step.next]


class DefinitionError(Exception):
    """A definition is invalid; `errors` holds (field, message) pairs, each naming the field."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{f}: {m}" for f, m in errors))


def _check_templates(value: Any, path: str, errors: list) -> None:
    if isinstance(value, str):
        message = check_template(value)
        if message:
            errors.append((path, message))
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_templates(v, f"{path}.{k}", errors)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_templates(v, f"{path}[{i}]", errors)


def parse_definition(raw: Any, max_nodes: int | None = None) -> Definition:
    """Validate a definition document and return it parsed; raises DefinitionError listing every problem.

    `max_nodes` caps the steps; without it, the document's own `settings.max_nodes`, else MAX_NODES."""
    errors: list[tuple[str, str]] = []
    if not isinstance(raw, dict):
        raise DefinitionError([("definition", "must be a JSON object")])
    unknown = set(raw) - TOP_FIELDS
    if unknown:
        errors.append(("definition", f"unknown field(s): {', '.join(sorted(unknown))}"))
    key = raw.get("key")
    if not isinstance(key, str) or not KEY_RE.match(key):
        errors.append(("key", "must be a slug of lowercase letters, digits, '-' or '_' (at most 80)"))
    elif key in RESERVED_KEYS:
        errors.append(("key", f"'{key}' is reserved (it is the address of the New workflow page); choose another"))
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        errors.append(("name", "is required"))
    elif len(name) > 120:
        errors.append(("name", "must be at most 120 characters"))
    kind = raw.get("kind", WorkflowKind.MANUAL.value)
    if kind not in KINDS:
        errors.append(("kind", f"must be one of {', '.join(KINDS)}"))
    queue = raw.get("queue", "default")
    if not isinstance(queue, str) or not KEY_RE.match(queue):
        errors.append(("queue", "must be a queue name of lowercase letters, digits, '-' or '_'"))
    trigger = raw.get("trigger", Trigger.MANUAL.value)
    if trigger not in TRIGGERS:
        errors.append(("trigger", f"must be one of {', '.join(TRIGGERS)}"))
    roles = raw.get("allowed_roles")
    if roles is not None and (
        not isinstance(roles, list) or not roles or any(r not in ROLES for r in roles)
    ):
        errors.append(("allowed_roles", f"must be a non-empty list of roles from {', '.join(ROLES)}"))
    specs, param_errors = parse_specs(raw.get("params"))
    errors.extend(param_errors)
    limits, settings_errors = check_limits(raw.get("settings"))
    errors.extend(settings_errors)
    if max_nodes is None:
        max_nodes = limits.get("max_nodes") or MAX_NODES

    raw_steps = raw.get("steps")
    steps: dict[str, StepSpec] = {}
    order: list[str] = []
    if not isinstance(raw_steps, list) or not raw_steps:
        errors.append(("steps", "must be a non-empty list of steps"))
        raw_steps = []
    elif len(raw_steps) > max_nodes:
        errors.append(("steps", f"has {len(raw_steps)} steps; at most {max_nodes} are allowed"))
    keys = [s.get("key") if isinstance(s, dict) else None for s in raw_steps]
    valid_targets = {k for k in keys if isinstance(k, str)} | {END}
    for i, item in enumerate(raw_steps):
        where = f"steps[{i}]"
        if not isinstance(item, dict):
            errors.append((where, "must be an object with key and type"))
            continue
        skey = item.get("key")
        if not isinstance(skey, str) or not STEP_KEY_RE.match(skey):
            errors.append((f"{where}.key", "must be a name of letters, digits and underscores"))
            continue
        if skey == END:
            errors.append((f"{where}.key", "'end' is reserved"))
            continue
        if skey in steps:
            errors.append((f"{where}.key", f"duplicate step key '{skey}'"))
            continue
        unknown = set(item) - STEP_FIELDS
        if unknown:
            errors.append((where, f"unknown field(s): {', '.join(sorted(unknown))}"))
        stype = item.get("type")
        step_type = STEP_TYPES.get(stype) if isinstance(stype, str) else None
        if step_type is None:
            errors.append((f"{where}.type", f"unknown step type '{stype}'; use one of {', '.join(STEP_TYPES)}"))
        settings = item.get("with", {})
        if not isinstance(settings, dict):
            errors.append((f"{where}.with", "must be an object of settings"))
            settings = {}
        elif step_type is not None:
            errors.extend((f"{where}.with.{f}", m) for f, m in step_type.validate(settings))
            templated = {k: v for k, v in settings.items() if k not in step_type.raw_settings}
            _check_templates(templated, f"{where}.with", errors)
        for link in ("next", "then", "else"):
            if link in item and item[link] not in valid_targets:
                errors.append((f"{where}.{link}", f"points to unknown step '{item[link]}'; use a step key or 'end'"))
        if stype != "condition" and ("then" in item or "else" in item):
            errors.append((where, "only condition steps have then/else; use next"))
        retry, retry_errors = parse_retry(item.get("retry"), f"{where}.retry")
        errors.extend(retry_errors)
        following = item.get("next") or (keys[i + 1] if i + 1 < len(keys) and isinstance(keys[i + 1], str) else END)
        steps[skey] = StepSpec(
            key=skey,
            type=str(stype),
            name=str(item.get("name") or skey),
            settings=settings,
            next=following,
            then=item.get("then"),
            otherwise=item.get("else"),
            retry=retry,
        )
        order.append(skey)

    if not errors and order:
        cycle = _find_cycle(steps, order[0])
        if cycle:
            errors.append(("steps", f"steps form a cycle: {' -> '.join(cycle)}"))
    if errors:
        raise DefinitionError(errors)
    return Definition(
        key=key,
        name=name.strip(),
        description=str(raw.get("description", "")),
        kind=kind,
        queue=queue,
        params=specs,
        steps=steps,
        first=order[0],
        raw=raw,
    )


def _find_cycle(steps: dict[str, StepSpec], start: str) -> list[str] | None:
    """Return the keys of a cycle reachable in the step graph, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def successors(key: str) -> list[str]:
        s = steps[key]
        targets = [s.then or s.next, s.otherwise or s.next] if s.type == "condition" else [s.next]
        return [t for t in targets if t != END]

    def visit(key: str) -> list[str] | None:
        state[key] = 1
        path.append(key)
        for nxt in successors(key):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[key] = 2
        return None

    for key in [start, *steps]:
        if key not in state:
            found = visit(key)
            if found:
                return found
    return None
