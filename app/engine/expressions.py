"""Placeholders and condition expressions, rendered in a sandboxed Jinja environment.

Templates see only what the executor hands them (`params`, `steps`, `run`, `vars`): no process
environment, no config, no Python internals.
"""
import re
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from jinja2 import StrictUndefined, TemplateError, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment


class ExpressionError(Exception):
    """A placeholder or expression could not be compiled or evaluated."""


class RawUrl(str):
    """URL text a definition inserts as it is (the raw_url filter, or a console variable), never encoded."""


def _raw_url(value: Any) -> RawUrl:
    return RawUrl(value)


def _url_component(value: Any) -> str:
    """How a placeholder's value appears inside a URL: percent-encoded as one path segment or query value."""
    if isinstance(value, RawUrl):
        return value
    return quote(str(value), safe="")


@lru_cache(maxsize=1)
def environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    for name in ("lipsum", "cycler", "joiner", "namespace"):
        env.globals.pop(name, None)
    env.filters["raw_url"] = _raw_url
    return env


@lru_cache(maxsize=1)
def url_environment() -> ImmutableSandboxedEnvironment:
    """The placeholder environment for URL settings: every value is encoded unless marked raw."""
    return environment().overlay(finalize=_url_component)


@lru_cache(maxsize=2048)
def _template(source: str):
    return environment().from_string(source)


@lru_cache(maxsize=2048)
def _url_template(source: str):
    return url_environment().from_string(source)


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


_LONE = re.compile(r"^\{\{(?P<expr>(?:(?!\}\}|\{\{).)*)\}\}$", re.S)


def render_value(value: Any, context: dict) -> Any:
    """Render every string inside `value` (recursively through lists and dicts) as a template.

    A string that is one placeholder and nothing else, such as "{{ steps.fetch.output.json | length }}",
    keeps the value's own type (a number, a list); anything else renders as text.
    """
    if isinstance(value, str):
        if "{" not in value:
            return value
        lone = _LONE.match(value.strip())
        if lone:
            return evaluate(lone.group("expr").strip(), context)
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


def render_url(source: Any, context: dict) -> Any:
    """Render a URL setting: `{{ vars.x }}` and `{{ value | raw_url }}` go in as written, and any other
    placeholder is percent-encoded as one path segment or query value, so `../` or `?` cannot change the URL."""
    if not isinstance(source, str) or "{" not in source:
        return source
    url_context = {**context, "vars": _raw_strings(context.get("vars", {}))}
    try:
        return _url_template(source).render(url_context)
    except TemplateError as exc:
        raise ExpressionError(f"{exc} in {source!r}") from exc
    except Exception as exc:
        raise ExpressionError(f"{type(exc).__name__}: {exc} in {source!r}") from exc


def _raw_strings(value: Any) -> Any:
    # Console variables are set by whoever runs the console, so they may carry whole base URLs.
    if isinstance(value, str):
        return RawUrl(value)
    if isinstance(value, dict):
        return {k: _raw_strings(v) for k, v in value.items()}
    return value


def evaluate(source: str, context: dict) -> Any:
    """Evaluate a condition expression such as `steps.fetch.output.json | length > 0`."""
    try:
        value = _expression(source)(**context)
        if isinstance(value, Undefined):
            value._fail_with_undefined_error()
        return value
    except TemplateError as exc:
        raise ExpressionError(f"{exc} in {source!r}") from exc
    except Exception as exc:
        raise ExpressionError(f"{type(exc).__name__}: {exc} in {source!r}") from exc
