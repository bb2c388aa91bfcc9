"""Strict JSON: the JSON Flowdesk accepts, which SQLite, PostgreSQL (JSONB) and a UTF-8 page can all hold.

Beyond the grammar it refuses NaN and Infinity, numbers too large for a double (1e999) or with more digits than
Python converts (4300), lone UTF-16 surrogates, NUL characters in keys and strings, and nesting deeper than
MAX_DEPTH. Every refusal names where it is, as a path like `params.rows[2]["odd key"]`.
"""
import json
import math
import re
from typing import Any

MAX_DEPTH = 64
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SURROGATE = re.compile("[\ud800-\udfff]")


class JsonRejected(ValueError):
    """JSON that is malformed or cannot be stored; `path` says where (empty: the text as a whole)."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.message = message
        self.path = path


class _Unrepresentable:
    """A number JSON cannot carry (NaN, Infinity, too many digits), kept so the check can say where it was."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def loads(text: str) -> Any:
    """Parse `text` as strict JSON, or raise JsonRejected naming the first problem and where it is."""
    try:
        value = json.loads(text, parse_constant=_constant)
    except RecursionError:
        raise JsonRejected(f"is nested more than {MAX_DEPTH} levels deep") from None
    except json.JSONDecodeError as exc:
        raise JsonRejected(f"is malformed: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except ValueError:  # an integer of more digits than Python converts (sys.get_int_max_str_digits)
        value = json.loads(text, parse_constant=_constant, parse_int=_int)
    problem = find_problem(value)
    if problem:
        raise JsonRejected(problem[1], problem[0])
    return value


_CHECKED = (str, float, dict, list, _Unrepresentable)


def _constant(literal: str) -> _Unrepresentable:
    return _Unrepresentable(f"is {literal}, which JSON does not allow")


def _int(literal: str):
    try:
        return int(literal)
    except ValueError:
        return _Unrepresentable(f"is a number with too many digits to store ({len(literal.lstrip('-'))} digits)")


def find_problem(value: Any) -> tuple[str, str] | None:
    """The first (path, message) in `value` that strict JSON refuses, or None when it can be stored as it is."""
    if not isinstance(value, (dict, list)):
        message = _scalar_problem(value)
        return ("", message) if message else None
    # Each entry is (container, depth, trail); a trail is (parent trail, key), turned into a path only when needed.
    stack: list[tuple[Any, int, tuple | None]] = [(value, 1, None)]
    while stack:
        container, depth, trail = stack.pop()
        for key, child in (container.items() if isinstance(container, dict) else enumerate(container)):
            message = text_problem(key) if isinstance(key, str) else None
            if message is None and isinstance(child, _CHECKED):  # ints, booleans and null are always fine
                if isinstance(child, (dict, list)):
                    if depth >= MAX_DEPTH:
                        message = f"is nested more than {MAX_DEPTH} levels deep"
                    stack.append((child, depth + 1, (trail, key)))
                else:
                    message = _scalar_problem(child)
            if message:
                return _path((trail, key)), message
    return None


def _scalar_problem(value: Any) -> str | None:
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, float) and not math.isfinite(value):
        # From JSON text only an overflow (1e999) gives one; NaN reaches here from Python callers.
        return "is NaN, which JSON does not allow" if value != value else "is a number too large to store"
    if isinstance(value, _Unrepresentable):
        return value.reason
    return None


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored (a NUL character, a lone surrogate), or None."""
    if "\x00" in text:
        return "contains a NUL character"
    surrogate = _SURROGATE.search(text)
    if surrogate:
        return f"contains an unpaired surrogate (\\u{ord(surrogate.group()):04x}), which is not a character"
    return None


def _path(trail: tuple | None) -> str:
    keys = []
    while trail is not None:
        trail, key = trail
        keys.append(key)
    path = ""
    for key in reversed(keys):
        if isinstance(key, int):
            path = f"{path}[{key}]"
        elif _NAME.fullmatch(key):
            path = f"{path}.{key}" if path else key
        else:
            path = f"{path}[{json.dumps(key)}]"
    return path
