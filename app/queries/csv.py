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


def query_csv(session, query: sa.Select) -> Iterator[bytes]:
    """The rows of `query` as CSV lines (no header), for queries whose cells are made above: text made safe,
    integers or NULL for empty. PostgreSQL writes the CSV itself (COPY ... TO STDOUT, RFC 4180 quoting), one
    message per row, and only the line ending becomes CRLF here: Python neither builds rows nor quotes cells, which
    took most of the time of a million-row export. SQLite's rows go through the csv module. Either way the rows
    are read as they are sent."""
    connection = session.connection()
    compiled = query.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
    processors = compiled._bind_processors  # SQLite's datetimes become its text form, as in any other query
    params = {name: processors[name](value) if name in processors else value
              for name, value in compiled.construct_params().items()}
    driver = connection.connection.dbapi_connection
    if connection.dialect.name == "postgresql":
        yield from _copy_csv(driver, compiled.string, params)
        return
    cursor = driver.cursor()
    try:
        cursor.execute(compiled.string, tuple(params[name] for name in compiled.positiontup))
        buffer = io.StringIO()
        writer = csv.writer(buffer, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
        while rows := cursor.fetchmany(ROWS_PER_CHUNK):
            writer.writerows(rows)
            yield _drain(buffer)
    finally:
        cursor.close()


def _copy_csv(driver, sql: str, params: dict) -> Iterator[bytes]:
    # psycopg merges the parameters into a COPY statement on the client (COPY takes no server-side parameters).
    with driver.cursor() as cursor, cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv)", params) as copy:
        chunk = bytearray()
        for row in copy:  # one row, ending in "\n" (a newline inside a cell is inside its quotes)
            chunk += row[:-1]
            chunk += b"\r\n"
            if len(chunk) >= 1 << 16:
                yield bytes(chunk)
                chunk.clear()
        if chunk:
            yield bytes(chunk)


def csv_chunks(header: Sequence[str], rows: Iterable[Sequence] = (), lines: Iterable[bytes] = ()) -> Iterator[bytes]:
    """The header and rows as UTF-8 CSV, yielded a few hundred rows at a time as they are read: `rows` of values
    (through `safe_cell`), or `lines` already written as CSV (see `query_csv`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow([safe_cell(h) for h in header])
    rows = iter(rows)
    while batch := list(islice(rows, ROWS_PER_CHUNK)):
        writer.writerows([safe_cell(v) for v in row] for row in batch)
        yield _drain(buffer)
    yield _drain(buffer)
    yield from lines


def _drain(buffer: io.StringIO) -> bytes:
    data = buffer.getvalue().encode("utf-8")
    buffer.seek(0)
    buffer.truncate()
    return data


def csv_response(filename: str, header: Sequence[str], rows: Iterable[Sequence] = (),
                 lines: Iterable[bytes] = ()) -> Response:
    """A streamed CSV download named `filename`; `rows` or `lines` (see `csv_chunks`) are read lazily, inside
    the request, while it is sent."""
    response = Response(stream_with_context(csv_chunks(header, rows, lines)),
                        content_type="text/csv; charset=utf-8")
    ascii_name = filename.encode("ascii", "replace").decode("ascii").replace('"', "")
    response.headers["Content-Disposition"] = (
        f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"
    )
    response.headers["Cache-Control"] = "no-store"
    return response
