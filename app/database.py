"""Database setup: engine options and SQLite pragmas, a connection whose transactions roll back fully, and hot
statements sent straight to the PostgreSQL driver (send_alone, send_in)."""
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session, make_transient_to_detached, scoped_session

from app.extensions import db

_EXPLICIT_BEGIN = "flowdesk_explicit_begin"


def init_database(app: Flask) -> None:
    """Attach Flask-SQLAlchemy; on SQLite, create the file's folder and set WAL and a busy timeout."""
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite"):
        if uri.startswith("sqlite:///") and uri != "sqlite:///:memory:":
            Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"connect_args": {"timeout": 30}})
    db.init_app(app)
    if uri.startswith("sqlite"):
        with app.app_context():
            sa.event.listen(db.engine, "connect", _sqlite_pragmas)
            sa.event.listen(db.engine, "begin", _sqlite_begin)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets the web server read while a worker writes; the busy timeout waits out short locks.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(conn) -> None:
    if conn.info.get(_EXPLICIT_BEGIN):
        conn.exec_driver_sql("BEGIN")


@contextmanager
def rollback_connection(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection in a transaction that is rolled back at the end, SAVEPOINTs included.

    On SQLite this uses SQLAlchemy's pysqlite recipe (SQLAlchemy, not the driver, emits BEGIN) on
    this one connection only, then discards it: applied to every connection, a transaction that
    reads and then writes would fail at once whenever another process committed in between.
    """
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            connection.connection.driver_connection.isolation_level = None
            connection.info[_EXPLICIT_BEGIN] = True
        outer = connection.begin()
        try:
            yield connection
        finally:
            outer.rollback()
            if sqlite:
                connection.invalidate()


def is_unique_violation(exc: sa.exc.IntegrityError) -> bool:
    """Whether an INSERT or UPDATE failed because another transaction had just written the same unique value (two
    requests at the same moment), rather than because of a missing or wrong value."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == "23505":  # PostgreSQL's unique_violation
        return True
    return getattr(orig, "sqlite_errorname", "") in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY")


def lock_row(session: Session, model, row_id: int) -> None:
    """Hold row `row_id` of `model` until the session's transaction ends, so that what is read next and written from
    it (the next number of a sequence kept in another table) cannot be read by a second transaction meanwhile.
    PostgreSQL locks the row (FOR UPDATE). SQLite has no row locks and ignores FOR UPDATE: a write that changes nothing
    takes its database-wide write lock instead (a second writer waits on the busy timeout), and as the transaction's
    first write it also starts it, so the reads after it see every commit before it."""
    table = sa.inspect(model).local_table
    (primary_key,) = table.primary_key.columns
    if session.get_bind().dialect.name == "sqlite":
        unchanged = {c: c for c in table.columns if c is primary_key or c.onupdate is not None}  # no onupdate fires
        session.execute(sa.update(table).where(primary_key == row_id).values(unchanged))
    else:
        session.execute(sa.select(primary_key).where(primary_key == row_id).with_for_update())


def insert_as_loaded(session: Session, objects: list) -> None:
    """INSERT new objects of one model with Core and add them to the session as if they had been loaded.

    One INSERT … RETURNING id per set of assigned columns; a later change to an object is flushed as an UPDATE, and a
    column left to its default is read on first access. The unit of work's INSERT of the same rows cost several times
    the CPU, which on the start path and in a worker was more than a short run's steps.
    """
    table = sa.inspect(type(objects[0])).local_table
    columns = {c.key for c in table.columns} - {"id"}
    groups: dict[tuple[str, ...], list] = {}
    for obj in objects:
        groups.setdefault(tuple(sorted(columns.intersection(obj.__dict__))), []).append(obj)
    for assigned, group in groups.items():
        connection = session.connection()
        if len(group) == 1 and connection.dialect.name == "postgresql":  # a started run, a step run: on the driver
            row = {key: group[0].__dict__[key] for key in assigned}
            ids = [send_in(connection, _insert_returning_id(table), row)["id"]]
        else:  # Core's path: the ORM's execute adds nothing to a table's INSERT
            ids = connection.execute(
                _insert_returning_id(table), [{key: obj.__dict__[key] for key in assigned} for obj in group]
            ).scalars()
        for obj, obj_id in zip(group, ids):
            obj.id = obj_id
            make_transient_to_detached(obj)
            session.add(obj)


def with_defaults(table: sa.Table, row: dict) -> dict:
    """`row` and the Python-side default of each column of `table` it leaves out (what SQLAlchemy's execution would add
    to an INSERT; a column with only a server default is left to the server)."""
    full = dict(row)
    for key, default in _python_defaults(table):
        if key not in full:
            full[key] = default.arg(None) if default.is_callable else default.arg
    return full


@lru_cache(maxsize=32)
def _python_defaults(table: sa.Table) -> tuple:
    """The columns of `table` with a Python-side default (a value or a function), and their defaults."""
    return tuple((c.key, c.default) for c in table.columns
                 if c.default is not None and (c.default.is_scalar or c.default.is_callable))


def built(model: type, **values):
    """A new (transient) `model` holding `values`, as its constructor would leave it but without firing an attribute
    event per value: for objects made on every start or step and written by their values (a new run, a journal's
    step runs; see insert_as_loaded and app/services/execution/at_once.py), the events cost most of the object. A
    flush inserts it from those values too, and later changes to it are tracked as usual."""
    obj = sa.inspect(model).class_manager.new_instance()
    obj.__dict__.update(values)
    return obj


@lru_cache(maxsize=16)
def _insert_returning_id(table: sa.Table) -> sa.Insert:
    """A table's INSERT … RETURNING id, built once (its cache key is then computed once too)."""
    return sa.insert(table).returning(table.c.id, sort_by_parameter_order=True)


def autocommit(engine: sa.Engine) -> sa.Connection:
    """A connection of `engine` on which each statement commits by itself (no BEGIN, no COMMIT, no ROLLBACK)."""
    return engine.connect().execution_options(isolation_level="AUTOCOMMIT")


def autocommit_engine(session: Session | scoped_session) -> sa.Engine | None:
    """On PostgreSQL, the engine to send one statement on outside any transaction (no BEGIN, no COMMIT: a statement
    is atomic by itself), when the session is bound to an engine and has not begun a transaction; else None, and
    the statement belongs in the session."""
    bind = session.get_bind()
    if not isinstance(bind, sa.Engine) or bind.dialect.name != "postgresql":
        return None
    return None if in_transaction(session) else bind


def in_transaction(session: Session | scoped_session) -> bool:
    """Whether the session has begun a transaction (a scoped session asks its session of this context)."""
    return (session() if isinstance(session, scoped_session) else session).in_transaction()


def send_alone(engine: sa.Engine, statement: sa.Executable, params: dict) -> dict | None:
    """Send one statement on PostgreSQL outside any transaction (it commits by itself) and return its first row as a
    dict, or None; see `send_in` for how it is sent."""
    if _watched(engine):
        with autocommit(engine) as connection:
            row = connection.execute(statement, params).first()
        return None if row is None else row._asdict()
    fairy = engine.raw_connection()
    driver = fairy.driver_connection
    try:
        driver.autocommit = True
        try:
            return _send(engine.dialect, driver, statement, params)
        finally:
            driver.autocommit = False
    except engine.dialect.loaded_dbapi.Error as exc:
        if engine.dialect.is_disconnect(exc, fairy.dbapi_connection, None):
            fairy.invalidate(exc)
        raise _wrapped(engine.dialect, statement, params, exc) from exc
    finally:
        fairy.close()


def send_in(connection: sa.Connection, statement: sa.Executable, params: dict) -> dict | None:
    """Send one statement on PostgreSQL in `connection`'s transaction and return its first row as a dict, or None. An
    INSERT is a bare `insert(table)` whose values are `params` (with the Python-side defaults of the columns left out).

    The statement goes straight to the psycopg connection: its text and bind processors are compiled once for the
    dialect, psycopg prepares it on the server after a few runs on a connection, and returns Python values as
    SQLAlchemy would (JSON parsed, timestamps as datetimes). The start's INSERT and a short run's claim and ending go
    this way: SQLAlchemy's execution context and result building cost more CPU than the statements themselves. A
    failure is raised as SQLAlchemy raises it (IntegrityError and the rest). With a cursor-execute listener on the
    engine (statement counters in tests, tracing in production) the statement goes through SQLAlchemy, which it sees.
    """
    if _watched(connection):
        row = connection.execute(statement, params).first()
        return None if row is None else row._asdict()
    dialect = connection.dialect
    try:
        return _send(dialect, connection.connection.driver_connection, statement, params)
    except dialect.loaded_dbapi.Error as exc:
        if dialect.is_disconnect(exc, connection.connection.dbapi_connection, None):
            connection.invalidate(exc)
        raise _wrapped(dialect, statement, params, exc) from exc


def _watched(bind: sa.Engine | sa.Connection) -> bool:
    return bool(bind.dispatch.before_cursor_execute or bind.dispatch.after_cursor_execute)


def _send(dialect: sa.Dialect, driver, statement: sa.Executable, params: dict) -> dict | None:
    if isinstance(statement, sa.Insert):
        params = with_defaults(statement.table, params)
    prepared = _compiled_alone(statement, dialect, _insert_keys(statement, params))
    values = prepared.compiled.construct_params(params)
    for key, process in prepared.processors:
        values[key] = process(values[key])
    cursor = driver.execute(prepared.compiled.string, values)
    row = cursor.fetchone()
    if row is None:
        return None
    if prepared.names is None:  # the same text always returns the same columns: psycopg's description is dear
        prepared.names = tuple(column.name for column in cursor.description)
    return dict(zip(prepared.names, row))


@dataclass
class _Prepared:
    """A statement compiled for a dialect, the bind processors of its typed parameters (by the name its text gives
    them), and the names of the columns it returns, once a row has shown them."""

    compiled: sa.engine.Compiled
    processors: tuple
    names: tuple[str, ...] | None = None


def _wrapped(dialect: sa.Dialect, statement: sa.Executable, params: dict, exc: Exception) -> sa.exc.DBAPIError:
    """The exception SQLAlchemy would have raised for `exc` (IntegrityError for a unique violation, and so on)."""
    return sa.exc.DBAPIError.instance(str(statement.compile(dialect=dialect)), params, exc, dialect.loaded_dbapi.Error)


def _insert_keys(statement: sa.Executable, params: dict) -> tuple[str, ...]:
    return tuple(params) if isinstance(statement, sa.Insert) else ()


@lru_cache(maxsize=64)
def _compiled_alone(statement: sa.Executable, dialect: sa.Dialect, keys: tuple[str, ...]) -> _Prepared:
    """`statement` compiled for `dialect` (an INSERT for the columns `keys` names); built once per statement and set of
    keys (the statements sent this way are built once too)."""
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))
    escaped = compiled.escaped_bind_names or {}
    processors = []
    for bind, name in compiled.bind_names.items():
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors.append((escaped.get(name, name), process))
    return _Prepared(compiled, tuple(processors))
