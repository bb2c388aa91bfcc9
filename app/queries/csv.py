"""CSV exports that stream: UTF-8, RFC 4180 quoting, and formula injection neutralised in every field."""
import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from urllib.parse import quote

from flask import Response, stream_with_context

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


def csv_chunks(header: Sequence[str], rows: Iterable[Sequence]) -> Iterator[bytes]:
    """The header and rows as UTF-8 CSV, yielded a few hundred rows at a time as they are read."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow([safe_cell(h) for h in header])
    count = 0
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
        count += 1
        if count % ROWS_PER_CHUNK == 0:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def csv_response(filename: str, header: Sequence[str], rows: Iterable[Sequence]) -> Response:
    """A streamed CSV download named `filename`; `rows` is read lazily, inside the request, while it is sent."""
    response = Response(stream_with_context(csv_chunks(header, rows)), content_type="text/csv; charset=utf-8")
    ascii_name = filename.encode("ascii", "replace").decode("ascii").replace('"', "")
    response.headers["Content-Disposition"] = (
        f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"
    )
    response.headers["Cache-Control"] = "no-store"
    return response
