"""Typed runtime parameters: checking their definitions and coercing the values people type."""
import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from app.engine import strictjson

PARAM_TYPES = ("string", "text", "integer", "number", "boolean", "date", "datetime", "choice", "json")
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MISSING = object()


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: str
    label: str
    required: bool = False
    default: Any = None
    options: tuple = ()
    help: str = ""
    minimum: float | None = None
    maximum: float | None = None


@dataclass
class ParamErrors(Exception):
    """Bad parameter values, one message per field name."""

    errors: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return "; ".join(f"{name}: {message}" for name, message in self.errors.items())


def parse_specs(raw: Any, path: str = "params") -> tuple[list[ParamSpec], list[tuple[str, str]]]:
    """Read the `params` list of a definition; returns specs and (field, message) errors."""
    errors: list[tuple[str, str]] = []
    specs: list[ParamSpec] = []
    if raw is None:
        return specs, errors
    if not isinstance(raw, list):
        return specs, [(path, "must be a list of parameter definitions")]
    seen: set[str] = set()
    for i, item in enumerate(raw):
        where = f"{path}[{i}]"
        if not isinstance(item, dict):
            errors.append((where, "must be an object with name and type"))
            continue
        name = item.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            errors.append((f"{where}.name", "must be a name of letters, digits and underscores"))
            continue
        if name in seen:
            errors.append((f"{where}.name", f"duplicate parameter name '{name}'"))
            continue
        seen.add(name)
        ptype = item.get("type", "string")
        if ptype not in PARAM_TYPES:
            errors.append((f"{where}.type", f"unknown type '{ptype}'; use one of {', '.join(PARAM_TYPES)}"))
            continue
        unknown = set(item) - {"name", "type", "label", "required", "default", "options", "help", "min", "max"}
        if unknown:
            errors.append((where, f"unknown field(s): {', '.join(sorted(unknown))}"))
        options = item.get("options", [])
        if ptype == "choice":
            if not isinstance(options, list) or not options or not all(isinstance(o, (str, int)) for o in options):
                errors.append((f"{where}.options", "a choice parameter needs a non-empty list of options"))
                continue
        bounds_ok = True
        for bound in ("min", "max"):
            value = item.get(bound)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                errors.append((f"{where}.{bound}", "must be a number"))
                bounds_ok = False
        if not bounds_ok:
            continue
        required = item.get("required", False)
        if not isinstance(required, bool):
            errors.append((f"{where}.required", "must be true or false"))
        spec = ParamSpec(
            name=name,
            type=ptype,
            label=str(item.get("label") or name.replace("_", " ").capitalize()),
            required=bool(required),
            options=tuple(str(o) for o in options) if ptype == "choice" else (),
            help=str(item.get("help", "")),
            minimum=item.get("min"),
            maximum=item.get("max"),
        )
        if "default" in item and item["default"] is not None:
            try:
                spec = ParamSpec(**{**spec.__dict__, "default": coerce_value(spec, item["default"])})
            except ValueError as exc:
                errors.append((f"{where}.default", str(exc)))
        specs.append(spec)
    return specs, errors


def coerce_value(spec: ParamSpec, value: Any, from_form: bool = False) -> Any:
    """Turn one typed or typed-in value into its JSON form, or raise ValueError with a message."""
    t = spec.type
    if isinstance(value, str):
        problem = strictjson.text_problem(value)
        if problem:
            raise ValueError(f"must not {problem.replace('contains', 'contain', 1)}")
    if t in ("string", "text"):
        if not isinstance(value, str):
            raise ValueError("must be text")
        return value
    if t == "integer":
        if isinstance(value, bool):
            raise ValueError("must be a whole number")
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise ValueError("must be a whole number") from None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            raise ValueError("must be a whole number")
        return _bounded(spec, value)
    if t == "number":
        if isinstance(value, bool):
            raise ValueError("must be a number")
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise ValueError("must be a number") from None
        if not isinstance(value, (int, float)):
            raise ValueError("must be a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return _bounded(spec, value)
    if t == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and (from_form or value.lower() in ("true", "false")):
            return value.lower() in ("on", "true", "1", "yes")
        raise ValueError("must be true or false")
    if t == "date":
        if not isinstance(value, str):
            raise ValueError("must be a date like 2026-01-31")
        try:
            return date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            raise ValueError("must be a date like 2026-01-31") from None
    if t == "datetime":
        if not isinstance(value, str):
            raise ValueError("must be a date and time like 2026-01-31T09:30")
        try:
            return datetime.fromisoformat(value.strip()).isoformat()
        except ValueError:
            raise ValueError("must be a date and time like 2026-01-31T09:30") from None
    if t == "choice":
        if str(value) not in spec.options:
            raise ValueError(f"must be one of: {', '.join(spec.options)}")
        return str(value)
    if t == "json":
        if from_form:
            try:
                return strictjson.loads(value)
            except strictjson.JsonRejected as exc:
                raise ValueError(f"must be valid JSON ({exc.path or 'the value'} {exc.message})") from None
        problem = strictjson.find_problem(value)
        if problem:
            raise ValueError(f"must be valid JSON ({problem[0] or 'the value'} {problem[1]})")
        return value
    raise ValueError(f"unknown type {t}")


def _bounded(spec: ParamSpec, value):
    if spec.minimum is not None and value < spec.minimum:
        raise ValueError(f"must be at least {spec.minimum}")
    if spec.maximum is not None and value > spec.maximum:
        raise ValueError(f"must be at most {spec.maximum}")
    return value


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def coerce_params(specs: list[ParamSpec], raw: dict, from_form: bool = False) -> dict:
    """Check and convert every parameter value; raises ParamErrors naming each bad field.

    Form posts send every field as text and omit unchecked boxes; API callers send JSON types and
    may not name parameters the workflow does not declare.
    """
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    if not isinstance(raw, dict):
        raise ParamErrors({"params": "must be an object of parameter values"})
    known = {s.name for s in specs}
    if not from_form:
        for name in raw:
            if name not in known:
                errors[name] = "is not a parameter of this workflow"
    for spec in specs:
        value = raw.get(spec.name, MISSING)
        if spec.type == "boolean" and from_form and value is MISSING:
            value = "off"
        if value is MISSING or _is_blank(value):
            if spec.default is not None:
                values[spec.name] = spec.default
            elif spec.required:
                errors[spec.name] = "is required"
            else:
                values[spec.name] = None
            continue
        try:
            values[spec.name] = coerce_value(spec, value, from_form=from_form)
        except ValueError as exc:
            errors[spec.name] = str(exc)
    if errors:
        raise ParamErrors(errors)
    return values
