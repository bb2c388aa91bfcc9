"""The editor's working copy: turning what people type into a workflow definition, one section, parameter or step at
a time, and saying what is wrong with it where they typed it.

The working copy is `workflow.draft_definition`; each change here writes it (never a version: saving is
`save_version`). A value that cannot take its JSON shape (letters in a number, a header line without a colon,
malformed JSON, a step key already taken) is refused with Invalid naming the form field, and nothing is written;
anything else is written, and the definition's validator and the placeholder check say what still needs fixing.
Form input is anything with `get` and `getlist` (a request's form).
"""
import copy
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.engine import strictjson
from app.engine.definition import END, MAX_NODES, STEP_KEY_RE, DefinitionError, parse_definition
from app.engine.limits import CARRIED_FIELDS, versioned_part
from app.engine.params import PARAM_TYPES, ParamSpec, coerce_value
from app.engine.references import unknown_references, steps_before
from app.engine.retry import BACKOFFS, MAX_ATTEMPTS
from app.engine.steps import STEP_TYPES
from app.engine.steps.approval import DEFAULT_TIMEOUT_SECONDS
from app.engine.steps.http import HTTP_METHODS
from app.models import User, Workflow, WorkflowVersion
from app.models.workflow import same_document
from app.security.policy import may_edit_definition
from app.services.errors import Conflict, Invalid, NotFound, PermissionDenied
from app.services.workflows.drafts import slug
from app.vocabulary import KINDS, LOG_LEVELS, ROLES, TRIGGERS, LogLevel, Role

SECTIONS = ("configuration", "restrictions", "settings", "parameters", "steps", "review", "json")
STEP_LABELS = {
    "http_request": "HTTP request",
    "condition": "Condition",
    "wait": "Wait",
    "log": "Log",
    "fail": "Fail",
    "approval": "Approval",
    "noop": "Do nothing",
}
BODY_KINDS = ("none", "json", "text")
SETTINGS_FIELDS = ("queue", "timeout_seconds", "max_runtime_seconds", "max_actions", "max_nodes")


class Form(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...

    def getlist(self, key: str) -> list: ...


@dataclass(frozen=True)
class Problem:
    """Something wrong with the working copy, and where the editor shows it: `section`, the step or parameter
    it belongs to, and the form `field` it sits next to (`anchor` is that field's element id)."""

    path: str  # the definition's own name for the field, such as "steps[2].with.url"
    message: str
    section: str
    field: str = ""
    step: str | None = None
    param: int | None = None
    warning: bool = False  # a placeholder naming something that does not exist: saving still works

    @property
    def anchor(self) -> str:
        if self.step is not None:
            return f"step-{self.field}" if self.field else "step-problems"
        if self.param is not None:
            return f"param-{self.param}-{self.field}" if self.field else f"param-{self.param}-problems"
        if self.section == "json":
            return "json-problems-now"
        return f"{self.section}-{self.field}" if self.field else f"{self.section}-problems"


@dataclass
class EditorState:
    """What the editor shows about a workflow's working copy: the document, what is wrong with it, the latest
    saved and the live versions, and whether the working copy differs from the latest saved version."""

    definition: dict
    problems: list[Problem]
    latest: WorkflowVersion | None
    live: WorkflowVersion | None
    max_nodes: int
    errors: list[Problem] = field(init=False)
    warnings: list[Problem] = field(init=False)

    def __post_init__(self):
        self.errors = [p for p in self.problems if not p.warning]
        self.warnings = [p for p in self.problems if p.warning]

    @property
    def unsaved(self) -> bool:
        if self.latest is None:
            return True
        return not same_document(versioned_part(self.latest.definition), versioned_part(self.definition))

    @property
    def revision(self) -> str:
        return revision(self.definition)

    @property
    def steps(self) -> list[dict]:
        return steps_of(self.definition)

    @property
    def params(self) -> list[dict]:
        return params_of(self.definition)

    def step(self, key: str) -> dict | None:
        return next((s for s in self.steps if s.get("key") == key), None)

    def step_problems(self, key: str) -> dict[str, str]:
        """Messages for the form fields of step `key` (the first per field)."""
        found: dict[str, str] = {}
        for problem in self.problems:
            if problem.step == key:
                found.setdefault(problem.field, problem.message)
        return found

    def param_problems(self, index: int) -> dict[str, str]:
        found: dict[str, str] = {}
        for problem in self.problems:
            if problem.param == index:
                found.setdefault(problem.field, problem.message)
        return found

    def top_problems(self, section: str, step: str | None = None, param: int | None = None) -> list[Problem]:
        """The problems shown at the top of a form: those of no field of it."""
        return [p for p in self.problems if p.section == section and p.step == step and p.param == param
                and not p.field]

    def section_problems(self, section: str) -> dict[str, str]:
        found: dict[str, str] = {}
        for problem in self.problems:
            if problem.section == section and problem.step is None and problem.param is None:
                found.setdefault(problem.field, problem.message)
        return found


def steps_of(definition: dict) -> list[dict]:
    """The working copy's steps that the editor can show (objects with a key)."""
    steps = definition.get("steps") if isinstance(definition, dict) else None
    if not isinstance(steps, list):
        return []
    return [s for s in steps if isinstance(s, dict) and isinstance(s.get("key"), str)]


def params_of(definition: dict) -> list[dict]:
    params = definition.get("params") if isinstance(definition, dict) else None
    return [p for p in params if isinstance(p, dict)] if isinstance(params, list) else []


# ---------------------------------------------------------------------------------------------- reading the state


def editor_state(session: Session, workflow: Workflow, definition: dict | None = None) -> EditorState:
    """The editor's view of `workflow`'s working copy (or of `definition`, a candidate not written yet)."""
    document = definition if definition is not None else (workflow.draft_definition or {})
    latest = session.scalar(
        sa.select(WorkflowVersion).where(WorkflowVersion.workflow_id == workflow.id)
        .order_by(WorkflowVersion.number.desc()).limit(1)
    )
    max_nodes = workflow.max_nodes or MAX_NODES
    return EditorState(document, find_problems(document, max_nodes), latest, workflow.published_version, max_nodes)


def find_problems(definition: dict, max_nodes: int = MAX_NODES) -> list[Problem]:
    """Everything wrong with a working copy: the validator's errors, then placeholders naming a parameter or step
    that does not exist where they are used (warnings)."""
    steps = definition.get("steps") if isinstance(definition, dict) else None
    problems: list[Problem] = []
    try:
        parse_definition(definition, max_nodes=max_nodes)
    except DefinitionError as exc:
        params = definition.get("params") if isinstance(definition, dict) else None
        problems = [locate(path, message, steps, params) for path, message in exc.errors]
    return problems + reference_problems(definition)


def reference_problems(definition: dict) -> list[Problem]:
    """Placeholders (and condition expressions) naming a parameter or step that does not exist where they are."""
    params = {p.get("name") for p in params_of(definition) if isinstance(p.get("name"), str)}
    steps = steps_of(definition)
    keys = {s["key"] for s in steps}
    found = []
    for step in steps:
        settings = step.get("with") if isinstance(step.get("with"), dict) else {}
        earlier = steps_before(steps, step["key"])
        for name, value in _strings(settings):
            expression = step.get("type") == "condition" and name == "expression"
            message = unknown_references(value, params, earlier, keys, expression=expression)
            if message:
                form_field = step_field(step, f"with.{name}")
                found.append(Problem(f"steps.{step['key']}.with.{name}",
                                     message if form_field else f"with.{name}: {message}", "steps", form_field,
                                     step=step["key"], warning=True))
    return found


def _strings(value: Any, path: str = ""):
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]")


# Step settings and the form field each is typed into.
_STEP_SETTING_FIELDS = {"json": "body", "body": "body", "headers": "headers"}
_PATH = re.compile(r"^(?P<list>steps|params)\[(?P<index>\d+)\](?:\.(?P<rest>.+))?$")
# The fields each step form has; a problem with anything else shows at the top of the form.
_STEP_COMMON = {"key", "name", "description", "retry", "retry_max_attempts", "retry_backoff_seconds",
                "retry_backoff", "retry_on"}
STEP_FORM_FIELDS = {
    "http_request": {"method", "url", "headers", "body", "body_kind", "timeout", "fail_on_error"},
    "condition": {"expression", "then", "else"},
    "wait": {"seconds"},
    "log": {"level", "message", "record_key"},
    "fail": {"code", "message", "suggested_fix"},
    "approval": {"roles", "message", "timeout_seconds", "allow_self_approval"},
    "noop": set(),
}
_PARAM_FIELDS = {"name", "type", "label", "help", "required", "default"}
_CONFIGURATION_FIELDS = {"name", "key", "description", "kind", "trigger"}
_SECTION_OF = {"queue": "settings", "settings": "settings", "allowed_roles": "restrictions", "params": "parameters",
               "steps": "steps", "definition": "json"}


def step_fields(step: dict) -> set[str]:
    """The form fields of `step`'s form."""
    links = set() if step.get("type") == "condition" else {"next"}
    return _STEP_COMMON | links | STEP_FORM_FIELDS.get(step.get("type"), set())


def param_fields(param: dict) -> set[str]:
    extra = {"choice": {"options"}, "integer": {"min", "max"}, "number": {"min", "max"}}
    return _PARAM_FIELDS | extra.get(param.get("type", "string"), set())


def step_field(step: dict, rest: str) -> str:
    """The form field of `step` where a problem with `rest` (its path inside the step) shows; "" for the top."""
    if rest.startswith("with."):
        setting = rest[len("with."):].split(".")[0].split("[")[0]
        field_name = _STEP_SETTING_FIELDS.get(setting, setting)
    elif rest.startswith("retry.") or rest == "retry":
        field_name = "retry_" + rest[len("retry."):].split(".")[0] if "." in rest else "retry"
    else:
        field_name = rest.split(".")[0]
    return field_name if field_name in step_fields(step) else ""


def locate(path: str, message: str, steps: Any = None, params: Any = None) -> Problem:
    """Where the editor shows the validator's message about `path`: the section, the step or parameter, and the
    form field (or none: the top of the form, with the path in the message)."""
    match = _PATH.match(path)
    if match is None:
        top = path.split(".")[0].split("[")[0]
        section = _SECTION_OF.get(top, "configuration")
        if section == "settings":
            field_name = path.split(".")[-1] if top == "settings" else top
        else:
            field_name = top if section == "configuration" and top in _CONFIGURATION_FIELDS else ""
        return Problem(path, message if field_name else f"{path}: {message}", section, field_name)
    index = int(match["index"])
    rest = match["rest"] or ""
    items = steps if match["list"] == "steps" else params
    item = items[index] if isinstance(items, list) and index < len(items) else None
    if match["list"] == "params":
        if not isinstance(item, dict):
            return Problem(path, f"{path}: {message}", "json")
        field_name = rest.split(".")[0].split("[")[0]
        field_name = field_name if field_name in param_fields(item) else ""
        return Problem(path, message if field_name else f"{rest or 'parameter'}: {message}", "parameters",
                       field_name, param=index)
    if not isinstance(item, dict) or not isinstance(item.get("key"), str):
        return Problem(path, f"{path}: {message}", "json")
    field_name = step_field(item, rest)
    return Problem(path, message if field_name else f"{rest or 'step'}: {message}", "steps", field_name,
                   step=item["key"])


# ---------------------------------------------------------------------------------------------- writing the copy


def revision(document: Any) -> str:
    """A short fingerprint of a working copy: a form carries the one it was shown with."""
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]


def write_working_copy(session: Session, workflow: Workflow, user: User, document: dict,
                       seen: str | None = None) -> EditorState:
    """Make `document` the workflow's working copy (admins only); returns the editor's view of it. `seen` is the
    revision the change was made from: when the working copy has changed since (another tab, another admin),
    Conflict, and nothing is written, so no one's change is lost unseen."""
    if not may_edit_definition(user, workflow):
        raise PermissionDenied("Only administrators change a workflow's definition.")
    if workflow.is_archived:
        raise Conflict("This workflow is archived; its definition no longer changes.")
    if seen and seen != revision(workflow.draft_definition):
        raise Conflict("The working copy changed since this form was shown (in another tab, or by someone else), "
                       "so nothing was applied.")
    workflow.draft_definition = copy.deepcopy(document)
    session.flush()
    return editor_state(session, workflow)


def working_copy(workflow: Workflow) -> dict:
    """A copy of the working copy to change (the row's own stays as it is until written)."""
    document = copy.deepcopy(workflow.draft_definition) if isinstance(workflow.draft_definition, dict) else {}
    return document


# ---------------------------------------------------------------------------------------------- new workflows


FIRST_STEP = {"key": "start", "type": "log", "name": "Start", "with": {"level": "info", "message": "Started"}}


def new_definition(form: Form) -> dict:
    """The document of a new draft from the New workflow form: its configuration and one log step to start from
    (a definition has at least one step)."""
    name = _text(form, "name").strip()
    key = _text(form, "key").strip() or slug(name)
    document = {"key": key, "name": name, "description": _text(form, "description").strip(),
                "kind": _text(form, "kind") or KINDS[0], "trigger": _text(form, "trigger") or TRIGGERS[0],
                "params": [], "steps": [copy.deepcopy(FIRST_STEP)]}
    return document


# ---------------------------------------------------------------------------------------------- configuration


def apply_configuration(definition: dict, form: Form, key_locked: bool) -> dict:
    """The working copy with the Configuration section's fields as typed; the key stays as it is once the
    workflow was published (runs, schedules and API callers name it)."""
    document = copy.deepcopy(definition)
    document["name"] = _text(form, "name").strip()
    document["description"] = _text(form, "description").strip()
    if not key_locked:
        document["key"] = _text(form, "key").strip()
    kind, trigger = _text(form, "kind"), _text(form, "trigger")
    errors = {}
    if kind not in KINDS:
        errors["kind"] = f"must be one of {', '.join(KINDS)}"
    if trigger not in TRIGGERS:
        errors["trigger"] = f"must be one of {', '.join(TRIGGERS)}"
    if errors:
        raise _invalid(errors)
    document["kind"], document["trigger"] = kind, trigger
    return document


# ---------------------------------------------------------------------------------------------- restrictions


def parse_restrictions(form: Form) -> list[str] | None:
    """The roles the Restrictions form allows: None for every role, else the roles checked (at least one)."""
    if _text(form, "audience") != "only":
        return None
    roles = [r for r in form.getlist("roles") if r in ROLES]
    if not roles:
        raise _invalid({"roles": "choose at least one role, or allow every role"})
    return [r for r in ROLES if r in roles]


# ---------------------------------------------------------------------------------------------- settings


def parse_settings(form: Form) -> dict:
    """The Settings form as update_settings takes it: each field as typed, None when left empty (update_settings
    checks each value and names the field it refuses)."""
    return {name: _text(form, name).strip() or None for name in SETTINGS_FIELDS}


# ---------------------------------------------------------------------------------------------- parameters


def add_param(definition: dict) -> tuple[dict, int]:
    """The working copy with a new text parameter at the end; returns it and the parameter's index."""
    document = copy.deepcopy(definition)
    params = document["params"] = params_of(document)
    taken = {p.get("name") for p in params}
    number = len(params) + 1
    while f"param_{number}" in taken:
        number += 1
    params.append({"name": f"param_{number}", "type": "string"})
    return document, len(params) - 1


def apply_param(definition: dict, index: int, form: Form) -> dict:
    """The working copy with parameter `index` as the parameter form says."""
    document = copy.deepcopy(definition)
    params = document["params"] = params_of(document)
    if not 0 <= index < len(params):
        raise NotFound("That parameter is not in the working copy any more.")
    params[index] = parse_param(form)
    return document


def parse_param(form: Form) -> dict:
    """One parameter's definition from its form; Invalid names each field that cannot take its shape."""
    errors: dict[str, str] = {}
    ptype = _text(form, "type")
    if ptype not in PARAM_TYPES:
        errors["type"] = f"must be one of {', '.join(PARAM_TYPES)}"
        ptype = "string"
    param: dict[str, Any] = {"name": _text(form, "name").strip(), "type": ptype}
    for name in ("label", "help"):
        text = _text(form, name).strip()
        if text:
            param[name] = text
    if form.get("required"):
        param["required"] = True
    if ptype == "choice":
        param["options"] = [line.strip() for line in _text(form, "options").splitlines() if line.strip()]
    if ptype in ("integer", "number"):
        for bound in ("min", "max"):
            text = _text(form, bound).strip()
            if text:
                number = _number(text, whole=ptype == "integer")
                if number is None:
                    errors[bound] = "must be a whole number" if ptype == "integer" else "must be a number"
                else:
                    param[bound] = number
    default = _text(form, "default")
    if default.strip() and not errors:
        spec = ParamSpec(name=param["name"], type=ptype, label=param["name"],
                         options=tuple(param.get("options", ())), minimum=param.get("min"),
                         maximum=param.get("max"))
        try:
            param["default"] = coerce_value(spec, default if ptype in ("text", "json") else default.strip(),
                                            from_form=ptype != "boolean")
        except ValueError as exc:
            errors["default"] = str(exc)
    if errors:
        raise _invalid(errors)
    return param


def move_item(items: list, index: int, direction: str) -> bool:
    """Swap item `index` with its neighbour above ("up") or below ("down"); False when it is at that end."""
    other = index - 1 if direction == "up" else index + 1
    if not (0 <= index < len(items) and 0 <= other < len(items)):
        return False
    items[index], items[other] = items[other], items[index]
    return True


def move_param(definition: dict, index: int, direction: str) -> dict:
    document = copy.deepcopy(definition)
    params = document["params"] = params_of(document)
    if not 0 <= index < len(params):
        raise NotFound("That parameter is not in the working copy any more.")
    move_item(params, index, direction)
    return document


def remove_param(definition: dict, index: int) -> dict:
    document = copy.deepcopy(definition)
    params = document["params"] = params_of(document)
    if not 0 <= index < len(params):
        raise NotFound("That parameter is not in the working copy any more.")
    del params[index]
    return document


# ---------------------------------------------------------------------------------------------- steps

DEFAULT_SETTINGS = {
    "http_request": {"method": "GET", "url": ""},
    "condition": {"expression": ""},
    "wait": {"seconds": 60},
    "log": {"level": LogLevel.INFO.value, "message": ""},
    "fail": {"code": "", "message": ""},
    "approval": {"roles": [Role.MANAGER.value, Role.ADMIN.value], "message": "",
                 "timeout_seconds": DEFAULT_TIMEOUT_SECONDS},
    "noop": {},
}


def add_step(definition: dict, step_type: str) -> tuple[dict, str]:
    """The working copy with a new step of `step_type` at the end; returns it and the new step's key."""
    if step_type not in STEP_TYPES:
        raise _invalid({"type": f"choose a step type: {', '.join(STEP_LABELS)}"})
    document = copy.deepcopy(definition)
    steps = document["steps"] = document["steps"] if isinstance(document.get("steps"), list) else []
    taken = {s.get("key") for s in steps if isinstance(s, dict)}
    number = 1
    while f"{step_type}_{number}" in taken:
        number += 1
    key = f"{step_type}_{number}"
    steps.append({"key": key, "type": step_type, "name": f"New {STEP_LABELS.get(step_type, step_type).lower()}",
                  "with": copy.deepcopy(DEFAULT_SETTINGS.get(step_type, {}))})
    return document, key


def _step_index(document: dict, key: str) -> int:
    steps = document.get("steps") if isinstance(document.get("steps"), list) else []
    for i, step in enumerate(steps):
        if isinstance(step, dict) and step.get("key") == key:
            return i
    raise NotFound("That step is not in the working copy any more.")


def apply_step(definition: dict, key: str, form: Form) -> tuple[dict, str]:
    """The working copy with step `key` as its form says; a new key is followed by every link to the step.
    Returns the document and the step's key."""
    document = copy.deepcopy(definition)
    index = _step_index(document, key)
    steps = document["steps"]
    old = steps[index]
    new = parse_step(old.get("type"), form, old)
    new_key = new["key"]
    errors = {}
    if not STEP_KEY_RE.match(new_key) or new_key == END:
        errors["key"] = "must start with a letter or underscore, then letters, digits and underscores (not 'end')"
    elif new_key != key and any(isinstance(s, dict) and s.get("key") == new_key for s in steps):
        errors["key"] = f"another step already has the key '{new_key}'"
    if errors:
        raise _invalid(errors)
    steps[index] = new
    if new_key != key:
        for step in steps:
            if isinstance(step, dict):
                for link in ("next", "then", "else"):
                    if step.get(link) == key:
                        step[link] = new_key
    return document, new_key


def parse_step(step_type: str, form: Form, old: dict | None = None) -> dict:
    """A step of `step_type` from its form. Settings the form has no field for (a log step's `meta`, say) are
    kept from `old`, so editing a step never drops what the JSON view put there."""
    errors: dict[str, str] = {}
    step: dict[str, Any] = {"key": _text(form, "key").strip(), "type": step_type}
    name = _text(form, "name").strip()
    if name:
        step["name"] = name
    description = _text(form, "description").strip()
    if description:
        step["description"] = description
    links = ("then", "else") if step_type == "condition" else ("next",)
    for link in links:
        target = _text(form, link).strip()
        if target:
            step[link] = target
    settings = dict(old.get("with") or {}) if old and isinstance(old.get("with"), dict) else {}
    settings.update(_settings_of(step_type, form, settings, errors))
    for gone in _CLEARED.get(step_type, ()):
        if not _text(form, gone).strip():
            settings.pop(gone, None)
    step["with"] = settings
    if form.get("retry"):
        step["retry"] = _retry_of(form, errors)
    if errors:
        raise _invalid(errors)
    return step


# Optional settings a form can empty: left blank, the setting goes.
_CLEARED = {"http_request": ("timeout",), "log": ("record_key",), "fail": ("suggested_fix",)}


def _settings_of(step_type: str, form: Form, settings: dict, errors: dict) -> dict:
    if step_type == "http_request":
        values: dict[str, Any] = {"method": _text(form, "method").upper() or "GET", "url": _text(form, "url").strip()}
        if values["method"] not in HTTP_METHODS:
            errors["method"] = f"must be one of {', '.join(HTTP_METHODS)}"
        headers, problem = _headers(_text(form, "headers"))
        if problem:
            errors["headers"] = problem
        settings.pop("headers", None)
        if headers:
            values["headers"] = headers
        settings.pop("json", None)
        settings.pop("body", None)
        kind = _text(form, "body_kind") or "none"
        body = _text(form, "body")
        if kind == "json" and body.strip():
            try:
                values["json"] = strictjson.loads(body)
            except strictjson.JsonRejected as exc:
                errors["body"] = f"must be valid JSON: {exc}"
        elif kind == "text" and body:
            values["body"] = body
        elif kind not in BODY_KINDS:
            errors["body_kind"] = "must be none, JSON or text"
        timeout = _text(form, "timeout").strip()
        if timeout:
            number = _number(timeout)
            if number is None:
                errors["timeout"] = "must be a number of seconds"
            else:
                values["timeout"] = number
        settings.pop("fail_on_error", None)
        if not form.get("fail_on_error"):
            values["fail_on_error"] = False  # a 4xx or 5xx answer is the step's output, not its failure
        return values
    if step_type == "condition":
        return {"expression": _text(form, "expression").strip()}
    if step_type == "wait":
        number = _number(_text(form, "seconds").strip())
        if number is None:
            errors["seconds"] = "must be a number of seconds"
            return {}
        return {"seconds": number}
    if step_type == "log":
        level = _text(form, "level") or LogLevel.INFO.value
        if level not in LOG_LEVELS:
            errors["level"] = f"must be one of {', '.join(LOG_LEVELS)}"
        values = {"level": level, "message": _text(form, "message")}
        record_key = _text(form, "record_key").strip()
        if record_key:
            values["record_key"] = record_key
        return values
    if step_type == "fail":
        values = {"code": _text(form, "code").strip(), "message": _text(form, "message")}
        fix = _text(form, "suggested_fix").strip()
        if fix:
            values["suggested_fix"] = fix
        return values
    if step_type == "approval":
        values = {"roles": [r for r in ROLES if r in form.getlist("roles")], "message": _text(form, "message"),
                  "allow_self_approval": bool(form.get("allow_self_approval"))}
        number = _number(_text(form, "timeout_seconds").strip())
        if number is None:
            errors["timeout_seconds"] = "must be a number of seconds"
        else:
            values["timeout_seconds"] = number
        return values
    return {}


def _retry_of(form: Form, errors: dict) -> dict:
    retry: dict[str, Any] = {}
    attempts = _number(_text(form, "retry_max_attempts").strip(), whole=True)
    if attempts is None:
        errors["retry_max_attempts"] = f"must be a whole number from 1 to {MAX_ATTEMPTS}"
    else:
        retry["max_attempts"] = attempts
    seconds = _number(_text(form, "retry_backoff_seconds").strip() or "0")
    if seconds is None:
        errors["retry_backoff_seconds"] = "must be a number of seconds"
    else:
        retry["backoff_seconds"] = seconds
    backoff = _text(form, "retry_backoff") or "fixed"
    if backoff not in BACKOFFS:
        errors["retry_backoff"] = f"must be one of {', '.join(BACKOFFS)}"
    retry["backoff"] = backoff
    codes = [c.strip().upper() for c in re.split(r"[,\s]+", _text(form, "retry_on")) if c.strip()]
    if codes:
        retry["on"] = codes
    return retry


def _headers(text: str) -> tuple[dict[str, str], str | None]:
    headers: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            return headers, f"line {number} must read 'Name: value'"
        headers[name.strip()] = value.strip()
    return headers, None


def move_step(definition: dict, key: str, direction: str) -> dict:
    """The working copy with step `key` one place up or down (a step without `next` goes on to the step below it,
    so moving it can change the path a run takes; the list shows where each step goes)."""
    document = copy.deepcopy(definition)
    move_item(document["steps"], _step_index(document, key), direction)
    return document


def remove_step(definition: dict, key: str) -> dict:
    """The working copy without step `key`; a link to it is dropped, so that step goes on to the step below it."""
    document = copy.deepcopy(definition)
    del document["steps"][_step_index(document, key)]
    for step in document["steps"]:
        if isinstance(step, dict):
            for link in ("next", "then", "else"):
                if step.get(link) == key:
                    del step[link]
    return document


def link_targets(steps: list[dict], key: str) -> list[tuple[str, str]]:
    """The choices of a step's `next` / `then` / `else`: the step below (the default), each other step, the end."""
    choices = [("", "The step below (or the end, for the last step)")]
    choices += [(s["key"], f"{s.get('name') or s['key']} ({s['key']})") for s in steps if s["key"] != key]
    return choices + [(END, "End the run")]


def step_form_values(step: dict) -> dict[str, Any]:
    """A step as its form shows it (the inverse of parse_step)."""
    settings = step.get("with") if isinstance(step.get("with"), dict) else {}
    values: dict[str, Any] = {"key": step.get("key", ""), "name": step.get("name", ""),
                              "description": step.get("description", ""), "next": step.get("next", ""),
                              "then": step.get("then", ""), "else": step.get("else", "")}
    for name, value in settings.items():
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            values[name] = value
    values["roles"] = settings.get("roles") if isinstance(settings.get("roles"), list) else []
    values["allow_self_approval"] = settings.get("allow_self_approval") is True
    values["fail_on_error"] = settings.get("fail_on_error", True) is not False
    headers = settings.get("headers")
    values["headers"] = "\n".join(f"{k}: {v}" for k, v in headers.items()) if isinstance(headers, dict) else ""
    if "json" in settings:
        values["body_kind"], values["body"] = "json", json.dumps(settings["json"], indent=2, ensure_ascii=False)
    elif "body" in settings:
        values["body_kind"], values["body"] = "text", str(settings["body"])
    else:
        values["body_kind"], values["body"] = "none", ""
    retry = step.get("retry")
    values["retry"] = isinstance(retry, dict)
    retry = retry if isinstance(retry, dict) else {}
    values["retry_max_attempts"] = retry.get("max_attempts", 3)
    values["retry_backoff_seconds"] = retry.get("backoff_seconds", 10)
    values["retry_backoff"] = retry.get("backoff", "fixed")
    values["retry_on"] = ", ".join(retry.get("on", [])) if isinstance(retry.get("on"), list) else ""
    return values


def param_form_values(param: dict) -> dict[str, Any]:
    """A parameter as its form shows it (the inverse of parse_param)."""
    values = {name: param.get(name, "") for name in ("name", "type", "label", "help")}
    values["type"] = values["type"] or "string"
    values["required"] = param.get("required") is True
    options = param.get("options")
    values["options"] = "\n".join(str(o) for o in options) if isinstance(options, list) else ""
    values["min"] = param.get("min", "")
    values["max"] = param.get("max", "")
    default = param.get("default")
    if default is None:
        values["default"] = ""
    elif values["type"] == "json":
        values["default"] = json.dumps(default, ensure_ascii=False)
    elif isinstance(default, bool):
        values["default"] = "true" if default else "false"
    else:
        values["default"] = str(default)
    return values


def check_step_field(definition: dict, key: str, form: Form, field_name: str) -> str | None:
    """What is wrong with `field_name` of step `key` as typed in its form (nothing is written): for the check
    people see while typing."""
    try:
        candidate, new_key = apply_step(definition, key, form)
    except Invalid as exc:
        return exc.fields.get(field_name)
    except NotFound:  # the step went (or took a new key) while a check was on its way: nothing to say
        return None
    problems = [p for p in find_problems(candidate) if p.step == new_key and p.field == field_name]
    return problems[0].message if problems else None


# ---------------------------------------------------------------------------------------------- the JSON view


def parse_document(text: str) -> dict:
    """The whole working copy from the JSON view; Invalid naming where the JSON is wrong."""
    try:
        document = strictjson.loads(text)
    except strictjson.JsonRejected as exc:
        raise _invalid({"document": f"is not valid JSON: {exc}"}) from None
    if not isinstance(document, dict):
        raise _invalid({"document": "must be a JSON object, like {\"name\": ..., \"steps\": [...]}"})
    return document


def apply_document(definition: dict, document: dict, key_locked: bool, max_nodes: int = MAX_NODES) -> dict:
    """The JSON view's document as the working copy, when the validator accepts it (the other sections show
    only what it accepts); Invalid lists each bad field, and the key of a published workflow stays."""
    carried = [name for name in CARRIED_FIELDS if name in document]
    if carried:
        raise _invalid({name: "is a setting, not part of the definition: change it under Settings or Restrictions"
                        for name in carried})
    if key_locked and document.get("key") != definition.get("key"):
        raise _invalid({"key": f"stays '{definition.get('key')}': a published workflow's key cannot change"})
    try:
        parse_definition(document, max_nodes=max_nodes)
    except DefinitionError as exc:
        raise Invalid("The definition has problems; nothing was applied.", fields=dict(exc.errors)) from None
    return document


# ---------------------------------------------------------------------------------------------- helpers


def _text(form: Form, name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


def _number(text: str, whole: bool = False) -> int | float | None:
    """A number typed in a form, or None when it is not one (whole numbers stay int)."""
    try:
        number = float(text)
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    if number.is_integer():
        return int(number)
    return None if whole else number


def _invalid(errors: dict[str, str]) -> Invalid:
    first = next(iter(errors.items()))
    return Invalid(f"{first[0]}: {first[1]}", fields=errors)

