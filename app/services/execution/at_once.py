"""A walk's whole ending in one statement, on PostgreSQL: the run's move, its new step runs and its log lines.

The journal's regular settle sends the step runs (INSERT … RETURNING id, for their log lines), the log lines and the
run's conditional UPDATE one after another, each built and compiled by SQLAlchemy. For a short run that was more
than its steps. Here one statement, its text built once per set of run columns, carries the step runs and the lines
as two JSON documents:

- `moved` moves the run from running (the same conditional UPDATE as `change_status`; its status is checked on the row
  the id found, see claims.on_the_row);
- `ids` reserves the new step runs' ids from their sequence, in step order (their count is read from the JSON, not
  passed: with a count parameter, PostgreSQL planned the statement anew on every run, as a custom plan);
- `steps` and `lines` insert them, the lines naming their step run by its place in the list (or by id, for a step run
  written at an earlier checkpoint), and in their order (a line's id is its place in the log).

What the statement writes is what the regular settle writes: a run that no longer moves (the reconciler ended it)
keeps the steps and lines that were buffered, as a record of what its worker did.
"""
import json
from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from app.database import autocommit_engine, send_alone, with_defaults
from app.engine.states import RunStatus
from app.models.log import LogEntry
from app.models.run import Run, StepRun

RUNS = Run.__table__
STEP_RUNS = StepRun.__table__
LOG_ENTRIES = LogEntry.__table__
# Every step run column but the id; a column a step run does not set takes its default (or NULL).
STEP_COLUMNS = [c for c in STEP_RUNS.columns if c.key != "id"]
STEP_KEYS = [c.key for c in STEP_COLUMNS]
LINE_COLUMNS = [c for c in LOG_ENTRIES.columns if c.key not in ("id", "step_run_id")]
DIALECT = postgresql.dialect()
quote = DIALECT.identifier_preparer.quote


def settle_at_once(session: Session, run_id: int, target: RunStatus, values: dict, steps: list[StepRun],
                   lines: list[tuple[StepRun | None, dict]]) -> bool:
    """Move run `run_id` from running to `target` with `values`, and insert `steps` (new step runs) and `lines` (log
    lines, each with its step run or None), in one statement (in the session's transaction if it has begun one).
    Sets the new step runs' ids; returns whether the run moved."""
    place = {id(sr): n for n, sr in enumerate(steps, 1)}
    step_rows = [{"ord": n, **_step_row(sr)} for n, sr in enumerate(steps, 1)]
    line_rows = []
    for n, (sr, row) in enumerate(lines, 1):
        ord_ = place.get(id(sr)) if sr is not None else None
        earlier = sr.id if sr is not None and ord_ is None else None  # a step run written at an earlier checkpoint
        line_rows.append({**row, "n": n, "step_ord": ord_, "step_run_id": earlier})
    statement = _statement(tuple(sorted(values)))
    params = {
        **values, "target": target.value, "run_id": run_id, "running": RunStatus.RUNNING.value,
        "steps": json.dumps(step_rows, default=_json_default),
        "lines": json.dumps(line_rows, default=_json_default),
    }
    if engine := autocommit_engine(session):
        row = send_alone(engine, statement, params)
    else:
        row = session.execute(statement, params).one()._asdict()
    for sr, step_run_id in zip(steps, row["ids"]):
        sr.id = step_run_id
    return row["moved"]


def _step_row(sr: StepRun) -> dict:
    fields = sr.__dict__
    return with_defaults(STEP_RUNS, {key: fields[key] for key in STEP_KEYS if key in fields})


def _json_default(value):
    """Datetimes as PostgreSQL reads them back into timestamp columns (naive UTC, like every time here)."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _names(columns, prefix: str = "") -> str:
    return ", ".join(prefix + quote(c.name) for c in columns)


def _record_type(columns) -> str:
    return ", ".join(f"{quote(c.name)} {c.type.compile(dialect=DIALECT)}" for c in columns)


@lru_cache(maxsize=32)
def _statement(run_keys: tuple[str, ...]) -> sa.TextClause:
    """The statement for a run update that sets `run_keys`, built once per set of keys."""
    sets = ", ".join(f"{quote(RUNS.c[key].name)} = :{key}" for key in run_keys)
    text = f"""
WITH moved AS (
    UPDATE runs SET status = :target, {sets} WHERE id = :run_id AND (status = :running) IS TRUE RETURNING id
), ids AS MATERIALIZED (
    SELECT nextval(pg_get_serial_sequence('step_runs', 'id')) AS id, ord
    FROM (SELECT r.ord FROM jsonb_to_recordset(CAST(:steps AS jsonb)) AS r(ord integer) ORDER BY r.ord OFFSET 0) AS o
), steps AS (
    INSERT INTO step_runs (id, {_names(STEP_COLUMNS)})
    SELECT ids.id, {_names(STEP_COLUMNS, "r.")}
    FROM jsonb_to_recordset(CAST(:steps AS jsonb)) AS r(ord integer, {_record_type(STEP_COLUMNS)})
    JOIN ids ON ids.ord = r.ord
), lines AS (
    INSERT INTO log_entries (step_run_id, {_names(LINE_COLUMNS)})
    SELECT COALESCE(r.step_run_id, ids.id), {_names(LINE_COLUMNS, "r.")}
    FROM jsonb_to_recordset(CAST(:lines AS jsonb))
        AS r(n integer, step_ord integer, step_run_id bigint, {_record_type(LINE_COLUMNS)})
    LEFT JOIN ids ON ids.ord = r.step_ord
    ORDER BY r.n
)
SELECT EXISTS (SELECT FROM moved) AS moved, ARRAY(SELECT id FROM ids ORDER BY ord) AS ids
"""
    binds = [sa.bindparam(key, type_=RUNS.c[key].type) for key in run_keys]
    return sa.text(text).bindparams(*binds).columns(moved=sa.Boolean, ids=sa.ARRAY(sa.BigInteger))
