"""Placeholders and condition expressions, rendered in a sandboxed Jinja environment.

Templates see only what the executor hands them (`params`, `steps`, `run`, `vars`): no process
environment, no config, no Python internals.
"""
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment


class ExpressionError(Exception):
    """A placeholder or expression could not be compiled or evaluated."""


@lru_cache(maxsize=1)
def environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    for name in ("lipsum", "cycler", "joiner", "namespace"):
        env.globals.pop(name, None)
    return env


@lru_cache(maxsize=2048)
def _template(source: str):
    return environment().from_string(source)


@lru_cache(maxsize=2048)
def _expression(source: str):
    return environment().compile_expression(source, undefined_to_none=False)


def check_template(source: str) -> str | None:
    """Return a syntax error message for a placeholder string, or None when it compiles."""
    try:
        _template(source)
    except TemplateError as exc:
        return f"invalid placeholder: {exc}"
    return None


def check_expression(source: str) -> str | None:
    """Return a syntax error message for a condition expression, or None when it compiles."""
    try:
        _expression(source)
    except TemplateError as exc:
        return f"invalid expression: {exc}"
    return None


def render_value(value: Any, context: dict) -> Any:
    """Render every string inside `value` (recursively through lists and dicts) as a template."""
    if isinstance(value, str):
        if "{" not in value:
            return value
        try:
            return _template(value).render(context)
        except TemplateError as exc:
            raise ExpressionError(f"{exc} in {value!r}") from exc
        except Exception as exc:  # errors raised by filters on bad data, e.g. length of None
            raise ExpressionError(f"{type(exc).__name__}: {exc} in {value!r}") from exc
    if isinstance(value, dict):
        return {k: render_value(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, context) for v in value]
    return value


def evaluate(source: str, context: dict) -> Any:
    """Evaluate a condition expression such as `steps.fetch.output.json | length > 0`."""
    try:
        return _expression(source)(**context)
    except TemplateError as exc:
        raise ExpressionError(f"{exc} in {source!r}") from exc
    except Exception as exc:
        raise ExpressionError(f"{type(exc).__name__}: {exc} in {source!r}") from exc
