"""CSV exports that stream: UTF-8, RFC 4180 quoting, and formula injection neutralised in every field."""
import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from itertools import islice
from urllib.parse import quote

import sqlalchemy as sa
from flask import Response, stream_with_context
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

# A spreadsheet treats a field starting with one of these as a formula (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ROWS_PER_CHUNK = 500


def safe_cell(value) -> str:
    """A value as CSV text: None is empty, datetimes are ISO 8601 UTC, and text that a spreadsheet would run as a
    formula gets a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds") + "Z"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    text = str(value)
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


# Cells made by the database, for exports where Python should only write rows (the runs CSV): the same text as
# `safe_cell` gives, so a million rows go out at about the rate the database hands them over.


class iso_utc(FunctionElement):
    """A UTC timestamp column as ISO 8601 text ending in Z: on PostgreSQL its text form with the T put in (as many
    decimals as it has: to_char would give milliseconds like `safe_cell`, at three times the cost of the whole
    read), on SQLite with milliseconds."""

    type = sa.String()
    inherit_cache = True


@compiles(iso_utc, "postgresql")
def _iso_utc_postgresql(element, compiler, **kw):
    # The ISO DateStyle (PostgreSQL's default, and what psycopg expects) writes "2026-11-21 10:00:00.123456".
    return f"(replace(CAST({compiler.process(element.clauses, **kw)} AS TEXT), ' ', 'T') || 'Z')"


@compiles(iso_utc)
def _iso_utc_sqlite(element, compiler, **kw):
    return f"strftime('%Y-%m-%dT%H:%M:%fZ', {compiler.process(element.clauses, **kw)})"


class _seconds(FunctionElement):
    type = sa.String()
    inherit_cache = True


@compiles(_seconds, "postgresql")
def _seconds_postgresql(element, compiler, **kw):
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"CAST(round(CAST(EXTRACT(EPOCH FROM ({end} - {start})) AS numeric), 3) AS text)"


@compiles(_seconds)
def _seconds_sqlite(element, compiler, **kw):
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"printf('%.3f', (julianday({end}) - julianday({start})) * 86400.0)"


def seconds_between(start, end) -> sa.ColumnElement:
    """`end - start` in seconds as text with three decimals ("2.000"); empty when either is NULL."""
    return sa.case((sa.and_(start.is_not(None), end.is_not(None)), _seconds(start, end)), else_=None)


class formula_safe(FunctionElement):
    """A text column with the apostrophe `safe_cell` puts before a formula (its first character's code compared
    with numbers: cheaper than comparing text under the database's collation)."""

    type = sa.String()
    inherit_cache = True


_FORMULA_CODES = ", ".join(str(ord(c)) for c in FORMULA_STARTS)


def _formula_safe(first_code: str):
    def render(element, compiler, **kw):
        column = compiler.process(element.clauses, **kw)
        apostrophe = "''''"  # the SQL literal for one '
        return f"CASE WHEN {first_code}({column}) IN ({_FORMULA_CODES}) THEN {apostrophe} || {column} ELSE {column} END"

    return render


compiles(formula_safe, "postgresql")(_formula_safe("ascii"))
compiles(formula_safe)(_formula_safe("unicode"))


def csv_chunks(header: Sequence[str], rows: Iterable[Sequence], ready: bool = False) -> Iterator[bytes]:
    """The header and rows as UTF-8 CSV, yielded a few hundred rows at a time as they are read. With `ready`,
    every cell is already text made safe (or a number, or None for empty) and rows are written as they come."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow([safe_cell(h) for h in header])
    rows = iter(rows)
    while batch := list(islice(rows, ROWS_PER_CHUNK)):
        if ready:
            writer.writerows(batch)
        else:
            writer.writerows([safe_cell(v) for v in row] for row in batch)
        yield buffer.getvalue().encode("utf-8")
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode("utf-8")


def csv_response(filename: str, header: Sequence[str], rows: Iterable[Sequence], ready: bool = False) -> Response:
    """A streamed CSV download named `filename`; `rows` is read lazily, inside the request, while it is sent
    (`ready`: see `csv_chunks`)."""
    response = Response(stream_with_context(csv_chunks(header, rows, ready)), content_type="text/csv; charset=utf-8")
    ascii_name = filename.encode("ascii", "replace").decode("ascii").replace('"', "")
    response.headers["Content-Disposition"] = (
        f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"
    )
    response.headers["Cache-Control"] = "no-store"
    return response
