"""Reading request input safely: ids in URLs, id cursors in query strings, JSON bodies, and page input that no
database could store. Each refusal is a 4xx naming the field, never a database error."""
import re
from typing import Any

from flask import Flask, current_app, request
from werkzeug.exceptions import BadRequest, UnsupportedMediaType
from werkzeug.routing import IntegerConverter, UnicodeConverter, ValidationError

from app.engine import strictjson
from app.web.errors import is_api_request

MAX_ID = 2**63 - 1  # the largest BIGINT: no id in the database is larger
_ID_TEXT = re.compile(r"[0-9]{1,19}")


def init_app(app: Flask) -> None:
    """Bound the URL converters (call before registering blueprints) and guard page input."""
    app.url_map.converters["int"] = IdConverter
    app.url_map.converters["default"] = app.url_map.converters["string"] = SegmentConverter
    app.before_request(refuse_unstorable_page_input)


class IdConverter(IntegerConverter):
    """`<int:...>`: a whole number up to MAX_ID, so a larger one answers 404 like any id that does not exist."""

    def to_python(self, value: str) -> int:
        number = super().to_python(value)
        if number > MAX_ID:
            raise ValidationError()
        return number


class SegmentConverter(UnicodeConverter):
    """`<name>`: one path segment without NUL characters (no key or name has one), so such URLs answer 404."""

    def to_python(self, value: str) -> str:
        if "\x00" in value:
            raise ValidationError()
        return value


class BadInput(BadRequest):
    """A malformed request (400); the message names the field, and `fields` says what is wrong with each."""

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or {}


def id_arg(name: str) -> int | None:
    """An id cursor from the query string (`?before=`, `?after=`): None when absent, 400 unless 0..MAX_ID."""
    raw = request.args.get(name, "")
    if raw == "":
        return None
    if not _ID_TEXT.fullmatch(raw) or int(raw) > MAX_ID:
        problem = f"must be a whole number from 0 to {MAX_ID}"
        raise BadInput(f"'{name}' {problem}.", {name: problem})
    return int(raw)


def json_body(default: Any = None) -> Any:
    """The request body as strict JSON (see app.engine.strictjson), or `default` when there is none.

    413 past MAX_CONTENT_LENGTH, 415 unless sent as application/json, 400 naming the field when malformed.
    """
    data = request.get_data(cache=True)
    if not data:
        return default
    if not request.is_json:
        raise UnsupportedMediaType("Send the body as JSON with 'Content-Type: application/json'.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = f"is not valid UTF-8 (byte {exc.start})"
        raise BadInput(f"The body {problem}.", {"body": problem}) from None
    try:
        return strictjson.loads(text)
    except strictjson.JsonRejected as exc:
        if not exc.path:
            raise BadInput(f"The body {exc.message}.", {"body": exc.message}) from None
        raise BadInput(f"The body is malformed: {exc.path} {exc.message}.", {exc.path: exc.message}) from None


def checks_own_form_fields(view):
    """Mark a view that shows unstorable form values next to their fields itself (the Run form answers 422)."""
    view.checks_own_form_fields = True
    return view


def refuse_unstorable_page_input() -> None:
    """Before a page request: 400 when its query string, or its form, holds a NUL character or a lone surrogate.

    The API reads its input strictly where it parses it; a page would otherwise hand such text to the database.
    """
    if is_api_request():
        return
    _refuse_in("query string", request.args)
    view = current_app.view_functions.get(request.endpoint)
    if not getattr(view, "checks_own_form_fields", False):
        _refuse_in("form", request.form)


def _refuse_in(where: str, values) -> None:
    for name, value in values.items(multi=True):
        for text, what in ((name, "name"), (value, "value")):
            problem = strictjson.text_problem(text)
            if problem:
                shown = name.encode("unicode_escape").decode("ascii")
                raise BadInput(f"The {where} field '{shown}' has a {what} that {problem}.", {shown: problem})
