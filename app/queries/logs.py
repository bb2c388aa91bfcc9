"""Job log queries: the search and level filter of a run's log, its CSV export, and log lines across a workflow's
runs (find by key or text, export errors by date). The page, its live tail and the exports all build on
`log_conditions`, so they show the same lines."""
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from app.models import LogEntry, Run
from app.models.run import StepRun
from app.timeutil import utcnow
from app.vocabulary import LOG_LEVELS, LogLevel
from app.web.inputs import BadInput

MAX_SEARCH = 200  # characters in a search
MAX_TERMS = 8
DEFAULT_DAYS = 30  # a workflow-wide search or error export covers the last 30 days unless told otherwise
_TOKEN = re.compile(r'"([^"]*)"|(\S+)')
_FIELD = re.compile(r"([A-Za-z_][A-Za-z0-9_.\-]{0,63}):(.+)")


@dataclass(frozen=True)
class Term:
    """One search term: free `text` (message or record key), a record `key`, or a metadata `name` equal to `value`."""

    kind: str  # "text" | "key" | "meta"
    value: str
    name: str = ""


def parse_search(q: str) -> list[Term]:
    """Split a search into terms: `key:INV-2291`, `invoice_id:INV-2291`, `"quoted text"` or a bare word."""
    terms = []
    for match in _TOKEN.finditer(q):
        quoted, word = match.groups()
        if quoted is not None:
            if quoted.strip():
                terms.append(Term("text", quoted.strip()))
            continue
        found = _FIELD.fullmatch(word)
        if found and found.group(1).lower() == "key":
            terms.append(Term("key", found.group(2)))
        elif found:
            terms.append(Term("meta", found.group(2), found.group(1)))
        else:
            terms.append(Term("text", word))
    return terms


@dataclass(frozen=True)
class LogFilter:
    """What a job log shows: lines at `level` and above that match every term of the search `q`."""

    level: str = LogLevel.DEBUG.value
    q: str = ""
    terms: tuple[Term, ...] = field(default=(), compare=False)

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> "LogFilter":
        """Read `level` and `q` from a query string; an unknown level means all levels, a search too long is 400."""
        level = args.get("level", LogLevel.DEBUG.value)
        if level not in LOG_LEVELS:
            level = LogLevel.DEBUG.value
        q = " ".join(args.get("q", "").split())
        if len(q) > MAX_SEARCH:
            problem = f"must be at most {MAX_SEARCH} characters"
            raise BadInput(f"The search {problem}.", {"q": problem})
        terms = tuple(parse_search(q))
        if len(terms) > MAX_TERMS:
            problem = f"may have at most {MAX_TERMS} terms"
            raise BadInput(f"The search {problem}.", {"q": problem})
        return cls(level, q, terms)

    def to_args(self) -> dict[str, str]:
        """The query-string arguments that give this filter back (defaults left out)."""
        args = {}
        if self.level != LogLevel.DEBUG:
            args["level"] = self.level
        if self.q:
            args["q"] = self.q
        return args

    @property
    def active(self) -> bool:
        return bool(self.to_args())


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class _meta_contains(FunctionElement):
    """`meta @> '<json>'` on PostgreSQL, where the metadata's GIN index answers it; true elsewhere."""

    type = sa.Boolean()
    inherit_cache = True


@compiles(_meta_contains, "postgresql")
def _meta_contains_postgresql(element, compiler, **kw):
    column, document = (compiler.process(c, **kw) for c in element.clauses)
    return f"({column} @> CAST({document} AS JSONB))"


@compiles(_meta_contains)
def _meta_contains_elsewhere(element, compiler, **kw):
    return "1 = 1"


def _meta_equals(name: str, value: str):
    """Metadata field `name` reads `value` as text (so `status:422` finds the number 422 as well as "422"). On
    PostgreSQL the index finds the candidates by containment (the value as a string, and as the JSON number or
    boolean it spells), and the text comparison keeps exactly the lines that match."""
    candidates = [value]
    try:
        spelled = json.loads(value)
    except ValueError:
        spelled = None
    if isinstance(spelled, bool) or (isinstance(spelled, (int, float)) and math.isfinite(spelled)):
        candidates.append(spelled)  # not NaN or Infinity, which JSON cannot hold
    exact = sa.cast(LogEntry.meta[name].as_string(), sa.Text) == value
    return sa.and_(sa.or_(*(_meta_contains(LogEntry.meta, json.dumps({name: c})) for c in candidates)), exact)


def term_condition(term: Term):
    """The SQL condition for one search term (the same lines on SQLite and PostgreSQL)."""
    if term.kind == "key":
        return LogEntry.record_key == term.value
    if term.kind == "meta":
        return _meta_equals(term.name, term.value)
    return sa.or_(LogEntry.message.ilike(_like(term.value), escape="\\"), LogEntry.record_key == term.value)


def log_conditions(log_filter: LogFilter, technical: bool) -> list:
    """The WHERE conditions for a filter; without `technical`, technical lines are left out."""
    conditions = [term_condition(t) for t in log_filter.terms]
    if log_filter.level != LogLevel.DEBUG:
        conditions.append(LogEntry.level_rank >= LogLevel(log_filter.level).rank)
    if not technical:
        conditions.append(LogEntry.technical.is_(False))
    return conditions


def _run_conditions(run_id: int, log_filter: LogFilter, technical: bool, after: int = 0) -> list:
    # Only a real bound on id: a second, empty one (`id > 0`) can lead SQLite to the wrong range.
    bound = [LogEntry.id > after] if after else []
    return [LogEntry.run_id == run_id, *bound, *log_conditions(log_filter, technical)]


def run_log_query(run_id: int, log_filter: LogFilter, technical: bool, after: int = 0) -> sa.Select:
    """A run's log lines that the filter shows, oldest first, after line id `after` (in the (run_id, id) index's
    order, so the index gives them without a sort)."""
    return (sa.select(LogEntry).where(*_run_conditions(run_id, log_filter, technical, after))
            .order_by(LogEntry.run_id, LogEntry.id))


# A page of log lines is read as rows, not LogEntry objects: the page and its polls only show them, and building
# 500 ORM objects was a fifth of a big run's page.
_LINE = tuple(LogEntry.__table__.c)


def run_log_after(
    session: Session, run_id: int, log_filter: LogFilter, technical: bool, after: int, limit: int,
) -> tuple[list[sa.Row], bool]:
    """Up to `limit` lines the filter shows after line id `after`, oldest first, and whether more follow."""
    lines = session.execute(_run_page(run_id, log_filter, technical, (after, None), False, limit + 1)).all()
    return list(lines[:limit]), len(lines) > limit


def run_log_newest(
    session: Session, run_id: int, log_filter: LogFilter, technical: bool, before: int | None, limit: int,
) -> tuple[list[sa.Row], bool]:
    """The newest `limit` lines the filter shows (before line id `before` when given), oldest first, and whether
    older lines remain."""
    lines = session.execute(_run_page(run_id, log_filter, technical, (None, before), True, limit + 1)).all()
    return list(reversed(lines[:limit])), len(lines) > limit


def run_log_newer(run_id, log_filter: LogFilter, after) -> sa.ScalarSelect:
    """The id of the first line the filter shows after line id `after` (either may be a bind parameter), or NULL;
    technical lines are counted, so a poll that finds none can say so to anyone, and one that finds some reads them
    the regular way. A scalar subquery keeps its ORDER BY and LIMIT, and so its index: under EXISTS PostgreSQL
    drops the order and may scan the whole run's level index (25 ms on a 1M-line run)."""
    first = _run_page(run_id, log_filter, True, (after, None), False, 1)
    return first.with_only_columns(LogEntry.id).scalar_subquery()


def _within(columns: tuple, values: tuple, after: int | None, before: int | None) -> list:
    """Line ids strictly between `after` and `before` (either may be None), said twice: `id > 1200` and, on the
    index's columns, `(run_id, id) > (7, 1200)`. With the first alone PostgreSQL walks the primary key from 1200
    and filters run_id row by row (on a busy log, every later line of every run, to find none of this run's); the
    row comparison makes it start in the run's own index at 1200."""
    bounds = []
    if after is not None:
        bounds += [LogEntry.id > after, sa.tuple_(*columns) > sa.tuple_(*values, after)]
    if before is not None:
        bounds += [LogEntry.id < before, sa.tuple_(*columns) < sa.tuple_(*values, before)]
    return bounds


def _run_page(run_id: int, log_filter: LogFilter, technical: bool, bounds: tuple[int | None, int | None],
              newest: bool, limit: int):
    """`limit` lines of a run strictly between the line ids `bounds` (after, before), in id order (newest first
    when `newest`), read along an index: (run_id, id) for all levels; with a level filter, (run_id, level_rank, id)
    once per level shown, merged by id."""
    order = (LogEntry.run_id.desc(), LogEntry.id.desc()) if newest else (LogEntry.run_id, LogEntry.id)
    if log_filter.level == "debug":
        within = _within((LogEntry.run_id, LogEntry.id), (run_id,), *bounds)
        return (sa.select(*_LINE).where(*_run_conditions(run_id, log_filter, technical), *within)
                .order_by(*order).limit(limit))
    others = log_conditions(replace(log_filter, level="debug"), technical)
    ranked = ((LogEntry.run_id.desc(), LogEntry.level_rank.desc(), LogEntry.id.desc()) if newest
              else (LogEntry.run_id, LogEntry.level_rank, LogEntry.id))
    branches = [
        sa.select(
            sa.select(LogEntry.id)
            .where(LogEntry.run_id == run_id, LogEntry.level_rank == rank, *others,
                   *_within((LogEntry.run_id, LogEntry.level_rank, LogEntry.id), (run_id, rank), *bounds))
            .order_by(*ranked).limit(limit).subquery().c.id
        )
        for rank in range(LogLevel(log_filter.level).rank, len(LOG_LEVELS))
    ]
    ids = sa.union_all(*branches).subquery()
    return sa.select(*_LINE).where(LogEntry.id.in_(sa.select(ids.c.id))).order_by(*order).limit(limit)


RUN_LOG_COLUMNS = ["time", "level", "step", "record_key", "message", "metadata"]


def run_log_rows(session: Session, run_id: int, log_filter: LogFilter, technical: bool) -> Iterator[tuple]:
    """The CSV rows of a run's filtered log (the lines `run_log_query` gives), read as they are sent."""
    query = (
        sa.select(LogEntry.created_at, LogEntry.level, StepRun.step_name, LogEntry.record_key, LogEntry.message,
                  LogEntry.meta)
        .outerjoin(StepRun, StepRun.id == LogEntry.step_run_id)
        .where(*_run_conditions(run_id, log_filter, technical))
        .order_by(LogEntry.run_id, LogEntry.id)
    )
    for created_at, level, step, record_key, message, meta in _stream(session, query):
        yield created_at, level, step, record_key, message, _json(meta)


@dataclass(frozen=True)
class DateRange:
    """Whole UTC days from `since` to `until`, both included."""

    since: date
    until: date

    @classmethod
    def from_args(cls, args: Mapping[str, str], days: int = DEFAULT_DAYS) -> "DateRange":
        """Read `since` and `until` (YYYY-MM-DD); absent means the last `days` days; a bad date is 400 naming it."""
        today = utcnow().date()
        until = _date_arg(args, "until") or today
        since = _date_arg(args, "since") or until - timedelta(days=days)
        if since > until:
            raise BadInput("'since' must not be after 'until'.", {"since": "must not be after until"})
        return cls(since, until)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.since, time.min)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.until + timedelta(days=1), time.min)

    def to_args(self) -> dict[str, str]:
        return {"since": self.since.isoformat(), "until": self.until.isoformat()}


def _date_arg(args: Mapping[str, str], name: str) -> date | None:
    raw = args.get(name, "").strip()
    if not raw:
        return None
    try:
        if len(raw) != 10:
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        problem = "must be a date like 2026-11-21 (YYYY-MM-DD)"
        raise BadInput(f"'{name}' {problem}.", {name: problem}) from None


def workflow_log_page(
    session: Session, workflow_id: int, log_filter: LogFilter, dates: DateRange, technical: bool,
    before: int | None, limit: int,
) -> tuple[list[tuple[LogEntry, Run]], int | None]:
    """Log lines of a workflow's runs in the date range that match the filter, newest first, a page at a time;
    returns the lines with their runs and the id to continue before (None on the last page)."""
    query = (
        sa.select(LogEntry, Run)
        .join(Run, Run.id == LogEntry.run_id)
        .where(
            Run.workflow_id == workflow_id,
            LogEntry.created_at >= dates.start, LogEntry.created_at < dates.end,
            *log_conditions(log_filter, technical),
        )
        .order_by(LogEntry.id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        query = query.where(LogEntry.id < before)
    rows = [tuple(r) for r in session.execute(query)]
    page = rows[:limit]
    return page, page[-1][0].id if len(rows) > limit else None


ERROR_COLUMNS = ["time", "run_id", "run_status", "step", "error_code", "record_key", "message"]


def workflow_error_rows(session: Session, workflow_id: int, dates: DateRange, technical: bool) -> Iterator[tuple]:
    """Every error-level line of a workflow's runs in the date range, oldest first, streamed."""
    conditions = log_conditions(LogFilter(level=LogLevel.ERROR.value), technical)
    query = (
        sa.select(
            LogEntry.created_at, Run.id, Run.status, StepRun.step_name,
            sa.func.coalesce(StepRun.error_code, sa.cast(LogEntry.meta["error_code"].as_string(), sa.Text)),
            LogEntry.record_key, LogEntry.message,
        )
        .join(Run, Run.id == LogEntry.run_id)
        .outerjoin(StepRun, StepRun.id == LogEntry.step_run_id)
        .where(
            Run.workflow_id == workflow_id,
            LogEntry.created_at >= dates.start, LogEntry.created_at < dates.end, *conditions,
        )
        .order_by(LogEntry.id)
    )
    for row in _stream(session, query):
        yield tuple(row)


def _stream(session: Session, query: sa.Select):
    """Rows of `query` read as they are sent: a server-side cursor on PostgreSQL, a thousand rows per fetch."""
    return session.execute(query.execution_options(stream_results=True, yield_per=1000))


def _json(value) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)
