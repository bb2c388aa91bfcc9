"""Filters that live in the query string: parsed once for the page, the API and the CSV export, and written
back for links and chips, so the three can never disagree."""
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone

from werkzeug.datastructures import MultiDict

from app.engine.states import RunStatus
from app.engine.strictjson import text_problem
from app.timeutil import utcnow
from app.vocabulary import KINDS, TRIGGERS
from app.web.inputs import MAX_ID, BadInput

DEFAULT_DAYS = 30
PAGE_SIZE = 50
MAX_LIMIT = 200
RANGES = {"today": "Today", "7d": "Last 7 days", "30d": "Last 30 days", "all": "All time"}
RANGE_DAYS = {"7d": 7, "30d": 30}
MAX_VALUES = 20  # repeated values of one filter


def _bad(name: str, problem: str) -> BadInput:
    return BadInput(f"'{name}' {problem}.", {name: problem})


def _when(name: str, raw: str, end: bool) -> datetime:
    """An ISO date (the whole day, UTC) or date and time; `end` makes a date mean the end of that day."""
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            return datetime.combine(day + timedelta(days=1) if end else day, time())
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise _bad(name, "must be a date like 2026-11-21 or a date and time like 2026-11-21T09:30") from None
    if value.tzinfo is not None:  # stored times are naive UTC
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def _cursor(args: MultiDict, name: str) -> int | None:
    raw = args.get(name, "")
    if raw == "":
        return None
    if not raw.isdigit() or len(raw) > 19 or int(raw) > MAX_ID:
        raise _bad(name, f"must be a whole number from 0 to {MAX_ID}")
    return int(raw)


def _choices(args: MultiDict, name: str, allowed) -> tuple[str, ...]:
    values = tuple(dict.fromkeys(v for v in args.getlist(name) if v != ""))
    if len(values) > MAX_VALUES:
        raise _bad(name, f"takes at most {MAX_VALUES} values")
    if allowed is not None:
        wrong = [v for v in values if v not in allowed]
        if wrong:
            raise _bad(name, f"must be one of {', '.join(allowed)} (got '{wrong[0]}')")
    return values


@dataclass(frozen=True)
class RunFilter:
    """Which runs a list, the API or an export shows; with no dates, the last 30 days."""

    statuses: tuple[str, ...] = ()
    triggers: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()
    workflows: tuple[str, ...] = ()  # keys; the per-workflow history fixes one
    versions: tuple[int, ...] = ()
    key: str = ""
    range: str = ""  # a preset (today, 7d, 30d, all), "" for the default or custom dates
    since: datetime | None = None
    until: datetime | None = None
    before: int | None = None  # ids below this (older)
    after: int | None = None  # ids above this (newer)
    limit: int = PAGE_SIZE

    @classmethod
    def from_args(cls, args: MultiDict, max_limit: int = MAX_LIMIT) -> "RunFilter":
        """Read the filter from a query string; a bad value is a 400 naming its field."""
        for name, value in args.items(multi=True):
            problem = text_problem(value)
            if problem:
                raise _bad(name, problem)
        versions = []
        for raw in _choices(args, "version", None):
            if not raw.isdigit() or len(raw) > 9:
                raise _bad("version", "must be version numbers like 3")
            versions.append(int(raw))
        key = args.get("key", "").strip()
        if len(key) > 120:
            raise _bad("key", "must be at most 120 characters")
        range_ = args.get("range", "")
        if range_ and range_ not in RANGES:
            raise _bad("range", f"must be one of {', '.join(RANGES)}")
        since = _when("since", args["since"], end=False) if args.get("since") else None
        until = _when("until", args["until"], end=True) if args.get("until") else None
        if since and until and until <= since:
            raise _bad("until", "must be after since")
        limit_raw = args.get("limit", "")
        if limit_raw and (not limit_raw.isdigit() or not 1 <= int(limit_raw) <= max_limit):
            raise _bad("limit", f"must be a whole number from 1 to {max_limit}")
        return cls(
            statuses=_choices(args, "status", [s.value for s in RunStatus]),
            triggers=_choices(args, "trigger", list(TRIGGERS)),
            kinds=_choices(args, "kind", list(KINDS)),
            queues=_choices(args, "queue", None),
            workflows=_choices(args, "workflow", None),
            versions=tuple(versions),
            key=key,
            range=range_ if not (since or until) else "",
            since=since,
            until=until,
            before=_cursor(args, "before"),
            after=_cursor(args, "after"),
            limit=int(limit_raw) if limit_raw else PAGE_SIZE,
        )

    @property
    def all_dates(self) -> bool:
        """No date bound: asked for, or a key search without dates (a key is looked up in an index, so it needs no
        default window, and the run someone asks about by key is often older than 30 days)."""
        return not (self.since or self.until) and (self.range == "all" or (bool(self.key) and not self.range))

    @property
    def window(self) -> tuple[datetime | None, datetime | None]:
        """The time range actually applied: custom dates, a preset, all dates (see `all_dates`), or the default
        last 30 days."""
        if self.since or self.until:
            return self.since, self.until
        now = utcnow()
        if self.all_dates:
            return None, None
        if self.range == "today":
            return datetime.combine(now.date(), time()), None
        return now - timedelta(days=RANGE_DAYS.get(self.range, DEFAULT_DAYS)), None

    @property
    def range_label(self) -> str:
        if self.since or self.until:
            since = self.since.date().isoformat() if self.since else "…"
            until = (self.until - timedelta(days=1)).date().isoformat() if self.until else "now"
            return f"{since} to {until}"
        return RANGES["all"] if self.all_dates else RANGES.get(self.range or "30d")

    def to_args(self, **changes) -> MultiDict:
        """The query string for this filter (with `changes`), without page cursors unless `changes` give one."""
        f = replace(self, **{"before": None, "after": None, **changes})
        pairs: list[tuple[str, str]] = []
        pairs += [("status", s) for s in f.statuses]
        pairs += [("trigger", t) for t in f.triggers]
        pairs += [("kind", k) for k in f.kinds]
        pairs += [("queue", q) for q in f.queues]
        pairs += [("workflow", w) for w in f.workflows]
        pairs += [("version", str(v)) for v in f.versions]
        if f.key:
            pairs.append(("key", f.key))
        if f.range:
            pairs.append(("range", f.range))
        if f.since:
            pairs.append(("since", _iso_arg(f.since, end=False)))
        if f.until:
            pairs.append(("until", _iso_arg(f.until, end=True)))
        if f.before is not None:
            pairs.append(("before", str(f.before)))
        if f.after is not None:
            pairs.append(("after", str(f.after)))
        if f.limit != PAGE_SIZE:
            pairs.append(("limit", str(f.limit)))
        return MultiDict(pairs)

    def chips(self, fixed_workflow: bool = False) -> list[tuple[str, MultiDict]]:
        """Each active filter as (label, the query string without it), for chips with an ×."""
        chips: list[tuple[str, MultiDict]] = [(self.range_label, self.to_args(range="all", since=None, until=None))]
        if self.all_dates:
            chips = []
        for s in self.statuses:
            chips.append((f"Status: {RunStatus(s).label}",
                          self.to_args(statuses=tuple(x for x in self.statuses if x != s))))
        for t in self.triggers:
            chips.append((f"Trigger: {t}", self.to_args(triggers=tuple(x for x in self.triggers if x != t))))
        for k in self.kinds:
            chips.append((f"Type: {k}", self.to_args(kinds=tuple(x for x in self.kinds if x != k))))
        for q in self.queues:
            chips.append((f"Queue: {q}", self.to_args(queues=tuple(x for x in self.queues if x != q))))
        if not fixed_workflow:
            for w in self.workflows:
                chips.append((f"Workflow: {w}", self.to_args(workflows=tuple(x for x in self.workflows if x != w))))
        for v in self.versions:
            chips.append((f"Version: v{v}", self.to_args(versions=tuple(x for x in self.versions if x != v))))
        if self.key:
            chips.append((f"Key: {self.key}", self.to_args(key="")))
        return chips

    @property
    def is_default(self) -> bool:
        return self == RunFilter(workflows=self.workflows, limit=self.limit)


def _iso_arg(value: datetime, end: bool) -> str:
    if value.time() == time() and value.microsecond == 0:
        return (value.date() - timedelta(days=1) if end else value.date()).isoformat()
    return value.isoformat(timespec="seconds")
