"""What a placeholder or condition expression refers to, checked against a definition's parameters and steps.

`{{ params.since }}` needs a parameter `since`; `{{ steps.fetch.output.json }}` needs a step `fetch` that can run
before the step using it; `record`, `run` and `vars` are always there (the record a run is about, the run itself,
the console's variables). The editor calls this as people type, so a name that does not exist is pointed out
before a run trips on it.
"""
from dataclasses import dataclass

from jinja2 import TemplateError, meta, nodes

from app.engine.expressions import environment

CONTEXT_NAMES = ("params", "steps", "record", "run", "vars")


@dataclass(frozen=True)
class Reference:
    root: str  # one of CONTEXT_NAMES, or an unknown name
    name: str | None  # the parameter or step named after `params.` / `steps.`, when there is one


def references(source: str, expression: bool = False) -> list[Reference]:
    """The context names a template (or, with `expression`, a condition expression) reads; [] when it does not
    compile (check_template and check_expression report that)."""
    if not isinstance(source, str) or ("{" not in source and not expression):
        return []
    text = "{{ " + source + " }}" if expression else source
    try:
        tree = environment().parse(text)
    except TemplateError:
        return []
    found: list[Reference] = []
    for name in sorted(meta.find_undeclared_variables(tree)):
        if name not in ("params", "steps"):
            found.append(Reference(name, None))
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        root = node.node
        if not isinstance(root, nodes.Name) or root.name not in ("params", "steps"):
            continue
        if isinstance(node, nodes.Getattr):
            found.append(Reference(root.name, node.attr))
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            found.append(Reference(root.name, node.arg.value))
    return found


def unknown_references(source: str, params: set[str], earlier_steps: set[str], all_steps: set[str],
                       expression: bool = False) -> str | None:
    """A message naming the first thing `source` refers to that does not exist where it is used, or None."""
    for ref in references(source, expression):
        if ref.root not in CONTEXT_NAMES:
            return f"unknown name '{ref.root}': placeholders read {', '.join(CONTEXT_NAMES)}"
        if ref.root == "params" and ref.name is not None and ref.name not in params:
            known = ", ".join(sorted(params)) or "none yet"
            return f"no parameter named '{ref.name}' (parameters: {known})"
        if ref.root == "steps" and ref.name is not None and ref.name not in earlier_steps:
            if ref.name in all_steps:
                return f"step '{ref.name}' does not run before this step, so it has no output here yet"
            return f"no step named '{ref.name}'"
    return None


def steps_before(steps: list[dict], key: str) -> set[str]:
    """The keys of the steps from which step `key` can be reached (so they may have run before it), following
    each step's `next` (or the following step), and a condition's `then` / `else`."""
    keys = [s.get("key") for s in steps if isinstance(s, dict) and isinstance(s.get("key"), str)]
    successors: dict[str, set[str]] = {}
    for i, step in enumerate(s for s in steps if isinstance(s, dict) and isinstance(s.get("key"), str)):
        following = keys[i + 1] if i + 1 < len(keys) else None
        default = step.get("next") or following
        targets = {default}
        if step.get("type") == "condition":
            targets = {step.get("then") or default, step.get("else") or default}
        successors[step["key"]] = {t for t in targets if isinstance(t, str) and t in keys}
    predecessors: dict[str, set[str]] = {k: set() for k in keys}
    for source, targets in successors.items():
        for target in targets:
            predecessors[target].add(source)
    seen: set[str] = set()
    pending = list(predecessors.get(key, ()))
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        pending.extend(predecessors.get(current, ()))
    seen.discard(key)
    return seen
