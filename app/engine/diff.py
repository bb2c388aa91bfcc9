"""What changed between two workflow definitions: the changed fields by path, a one-line summary for a version, and
a unified text diff of the pretty-printed JSON for people to read. Pure: dicts in, values out.

Paths name steps by key and parameters by name, not by position, so moving a step reads as a reorder rather than
every step changing: `name`, `steps.notify.with.url`, `params.since.default`, `settings.max_nodes`. A step or
parameter that appears is `[None, "added"]`, one that goes is `["removed", None]`; a new order of the same steps is
`steps.order` (the keys before and after).
"""
import difflib
import json
from dataclasses import dataclass, field
from typing import Any

ADDED = "added"
REMOVED = "removed"
MAX_AUDIT_CHANGES = 50  # changed paths an audit row keeps; past that it says how many more there were
MAX_AUDIT_VALUE = 300  # characters of one old or new value an audit row keeps
MAX_SUMMARY = 255  # a version's summary column
_MISSING = object()


@dataclass(frozen=True)
class DiffLine:
    """A line of a unified diff; `kind` is "add", "remove", "hunk" or "same"."""

    kind: str
    text: str


@dataclass(frozen=True)
class DefinitionDiff:
    """The changes from one definition to the next: `changes` as (path, old, new), `summary` in words (such as
    "changed 2 steps, added 'Notify'"), `lines` the unified diff of the two pretty-printed documents."""

    changes: list[tuple[str, Any, Any]]
    summary: str
    lines: list[DiffLine] = field(repr=False)

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def audit_changes(self, limit: int = MAX_AUDIT_CHANGES) -> dict[str, list]:
        """The changes as an audit row keeps them, {path: [old, new]}: at most `limit` paths, long values cut; a
        `…` entry says how many paths were left out."""
        kept = {path: [_short(old), _short(new)] for path, old, new in self.changes[:limit]}
        if len(self.changes) > limit:
            kept["…"] = [None, f"{len(self.changes) - limit} more changes"]
        return kept


def diff_definitions(old: dict | None, new: dict, old_label: str = "before", new_label: str = "after"
                     ) -> DefinitionDiff:
    """Compare two definition documents (`old` None for the first one); the labels head the text diff."""
    if old is None:
        steps = _keyed(new.get("steps"), "key")
        count = len(steps)
        summary = f"created with {count} step{'s' if count != 1 else ''}"
        changes = [(f"steps.{key}", None, ADDED) for key in steps]
        return DefinitionDiff(changes, summary, unified_lines(None, new, old_label, new_label))
    changes: list[tuple[str, Any, Any]] = []
    for name in _ordered_union(old, new):
        if name == "steps":
            changes += _diff_keyed("steps", old.get("steps"), new.get("steps"), "key")
        elif name == "params":
            changes += _diff_keyed("params", old.get("params"), new.get("params"), "name")
        else:
            _diff_value(name, old.get(name, _MISSING), new.get(name, _MISSING), changes)
    changes = [(path, None if a is _MISSING else a, None if b is _MISSING else b) for path, a, b in changes]
    return DefinitionDiff(changes, _summary(changes, old, new), unified_lines(old, new, old_label, new_label))


def pretty(document: Any) -> str:
    """A definition as people read it: indented JSON with sorted keys."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def unified_lines(old: Any, new: Any, old_label: str = "before", new_label: str = "after", context: int = 3
                  ) -> list[DiffLine]:
    """A unified diff of two documents as pretty JSON, without the file header lines; `old` None diffs from
    nothing (every line added)."""
    before = [] if old is None else pretty(old).splitlines()
    after = pretty(new).splitlines()
    lines = []
    for text in difflib.unified_diff(before, after, fromfile=old_label, tofile=new_label, lineterm="", n=context):
        if text.startswith(("---", "+++")):
            continue
        kind = {"@": "hunk", "+": "add", "-": "remove"}.get(text[:1], "same")
        lines.append(DiffLine(kind, text))
    return lines


def _ordered_union(old: dict, new: dict) -> list[str]:
    return list(old) + [name for name in new if name not in old]


def _keyed(items: Any, key: str) -> dict[str, Any]:
    """A list of objects by their `key` field, in order; items without a usable key are left out."""
    if not isinstance(items, list):
        return {}
    found = {}
    for item in items:
        if isinstance(item, dict) and isinstance(item.get(key), str | int) and str(item[key]) not in found:
            found[str(item[key])] = item
    return found


def _diff_keyed(prefix: str, old_items: Any, new_items: Any, key: str) -> list[tuple[str, Any, Any]]:
    """Changes to a list of steps (by key) or parameters (by name): added, removed, changed fields, new order."""
    old, new = _keyed(old_items, key), _keyed(new_items, key)
    if not old and not new and old_items != new_items:
        return [(prefix, old_items, new_items)]
    changes: list[tuple[str, Any, Any]] = []
    for name, item in old.items():
        if name not in new:
            changes.append((f"{prefix}.{name}", REMOVED, None))
        else:
            _diff_value(f"{prefix}.{name}", item, new[name], changes)
    changes += [(f"{prefix}.{name}", None, ADDED) for name in new if name not in old]
    kept_old = [name for name in old if name in new]
    kept_new = [name for name in new if name in old]
    if kept_old != kept_new:
        changes.append((f"{prefix}.order", list(old), list(new)))
    return changes


def _diff_value(path: str, old: Any, new: Any, changes: list) -> None:
    """Recurse through objects; anything else (lists included) is compared whole."""
    if isinstance(old, dict) and isinstance(new, dict):
        for name in _ordered_union(old, new):
            _diff_value(f"{path}.{name}", old.get(name, _MISSING), new.get(name, _MISSING), changes)
    elif old != new or type(old) is not type(new):
        changes.append((path, old, new))


def _summary(changes: list[tuple[str, Any, Any]], old: dict, new: dict) -> str:
    """Say what changed in a few words: fields, parameters and steps."""
    if not changes:
        return "no changes"
    fields: list[str] = []
    groups = {"params": _Group(), "steps": _Group()}
    for path, before, after in changes:
        head, _, rest = path.partition(".")
        if head in groups and rest:
            name, _, tail = rest.partition(".")
            group = groups[head]
            if name == "order" and not tail:
                group.reordered = True
            elif after == ADDED and not tail:
                group.added.append(name)
            elif before == REMOVED and not tail:
                group.removed.append(name)
            else:
                group.changed.setdefault(name, None)
        elif head not in fields:
            fields.append(head)
    parts = []
    if fields:
        parts.append("changed " + _and(fields))
    step_names = {**_names(old.get("steps")), **_names(new.get("steps"))}
    parts += groups["params"].describe("parameter", lambda n: f"parameter '{n}'")
    parts += groups["steps"].describe("step", lambda k: f"'{step_names.get(k, k)}'")
    text = ", ".join(parts)
    return text if len(text) <= MAX_SUMMARY else text[:MAX_SUMMARY - 1] + "…"


@dataclass
class _Group:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: dict[str, None] = field(default_factory=dict)
    reordered: bool = False

    def describe(self, noun: str, label) -> list[str]:
        parts = []
        if self.changed:
            count = len(self.changed)
            parts.append(f"changed {count} {noun}{'s' if count != 1 else ''}")
        if self.added:
            parts.append("added " + _and([label(n) for n in self.added], noun))
        if self.removed:
            parts.append("removed " + _and([label(n) for n in self.removed], noun))
        if self.reordered:
            parts.append(f"reordered {noun}s")
        return parts


def _and(words: list[str], noun: str | None = None) -> str:
    """'a', 'a and b', 'a, b and c'; more than three read as a count of `noun`s."""
    if noun and len(words) > 3:
        return f"{len(words)} {noun}s"
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _names(steps: Any) -> dict[str, str]:
    return {key: str(step.get("name") or key) for key, step in _keyed(steps, "key").items()}


def _short(value: Any) -> Any:
    """A value as an audit row keeps it: as it is when short, else its JSON cut to MAX_AUDIT_VALUE characters."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    if len(text) > MAX_AUDIT_VALUE:
        return text[:MAX_AUDIT_VALUE - 1] + "…"
    return value
