"""A workflow's job settings and safety limits: their names, bounds and checks (the definition's `settings` object
and the settings form share them)."""
from typing import Any

MAX_NODES = 200  # steps a definition may have unless its workflow's max_nodes says otherwise
LIMIT_FIELDS = ("timeout_seconds", "max_runtime_seconds", "max_actions", "max_nodes")
# Whole-number bounds of each; every one but max_nodes may also be null (no limit, or the configured default).
BOUNDS: dict[str, tuple[int, int]] = {
    "timeout_seconds": (1, 7 * 24 * 3600),
    "max_runtime_seconds": (1, 7 * 24 * 3600),
    "max_actions": (1, 1_000_000),
    "max_nodes": (1, 1000),
}
NULLABLE = frozenset({"timeout_seconds", "max_runtime_seconds", "max_actions"})
LABELS = {
    "timeout_seconds": "Job timeout (seconds)",
    "max_runtime_seconds": "Max runtime (seconds)",
    "max_actions": "Max actions per run",
    "max_nodes": "Max nodes",
}


# What a definition document may carry besides the versioned definition: settings of the workflow, applied to it
# and not versioned.
CARRIED_FIELDS = ("queue", "allowed_roles", "settings")


def versioned_part(document: dict) -> dict:
    """The document without what it carries that is not versioned (queue, allowed_roles, settings)."""
    return {name: value for name, value in document.items() if name not in CARRIED_FIELDS}


def check_limit(name: str, value: Any) -> tuple[int | None, str | None]:
    """A limit's value, checked: (value, None), or (None, what is wrong)."""
    low, high = BOUNDS[name]
    if value is None or value == "":
        return (None, None) if name in NULLABLE else (None, "is required")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        return None, f"must be a whole number from {low} to {high}" + (", or empty" if name in NULLABLE else "")
    if not low <= value <= high:
        return None, f"must be from {low} to {high}"
    return value, None


def check_limits(raw: Any, path: str = "settings") -> tuple[dict, list[tuple[str, str]]]:
    """A definition's `settings` object ({timeout_seconds, max_runtime_seconds, max_actions, max_nodes}, each
    optional): the values it sets, and (field, message) errors naming `path.field`."""
    if raw is None:
        return {}, []
    if not isinstance(raw, dict):
        return {}, [(path, f"must be an object with any of {', '.join(LIMIT_FIELDS)}")]
    values, errors = {}, []
    unknown = sorted(set(raw) - set(LIMIT_FIELDS))
    if unknown:
        errors.append((path, f"unknown field(s): {', '.join(unknown)}; use {', '.join(LIMIT_FIELDS)}"))
    for name in LIMIT_FIELDS:
        if name in raw:
            value, problem = check_limit(name, raw[name])
            if problem:
                errors.append((f"{path}.{name}", problem))
            else:
                values[name] = value
    return values, errors
