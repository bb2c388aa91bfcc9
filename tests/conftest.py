"""Fixtures: a real database (SQLite file, or PostgreSQL from DATABASE_URL), a real Redis (embedded,
or REDIS_URL), real RQ workers, a live HTTP server, and signed-in clients for each role."""
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parent.parent
TEST_REDIS_DB = 13
PASSWORD = "correct-horse-battery"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _with_db_number(url: str, number: int) -> str:
    if url.startswith("unix://"):
        return f"{url.split('?')[0]}?db={number}"
    base = re.sub(r"/\d+$", "", url.rstrip("/"))
    return f"{base}/{number}"


@pytest.fixture(scope="session")
def tmp_root():
    with tempfile.TemporaryDirectory(prefix="flowdesk-tests-") as d:
        yield Path(d)


SESSION_MARK = "flowdesk:test-session"


def _claim_redis_db(url: str) -> str:
    """Claim a database number no other test session on this Redis is using (marked with SET NX)."""
    import redis

    for number in range(TEST_REDIS_DB, 16):
        candidate = _with_db_number(url, number)
        client = redis.Redis.from_url(candidate)
        try:
            if client.set(SESSION_MARK, os.getpid(), nx=True, ex=3 * 3600):
                return candidate
        finally:
            client.close()
    raise RuntimeError(f"every Redis database from {TEST_REDIS_DB} to 15 is in use by another test session")


@pytest.fixture(scope="session")
def redis_url(tmp_root):
    """REDIS_URL when set (on a database number of this session's own), else a private embedded redis-server."""
    import redis

    from app.embedded import ensure_embedded_redis, stop_embedded_redis

    if os.environ.get("REDIS_URL"):
        url = _claim_redis_db(os.environ["REDIS_URL"])
        yield url
        client = redis.Redis.from_url(url)
        client.flushdb()
        client.close()
        return
    url, _ = ensure_embedded_redis(tmp_root / "redis", persist=False)
    yield _with_db_number(url, TEST_REDIS_DB)
    stop_embedded_redis(tmp_root / "redis")


@pytest.fixture(scope="session")
def database_url(tmp_root):
    """A SQLite file of this test session, or, when DATABASE_URL is set (PostgreSQL in CI), a schema of
    its own in that database, so two suites on one machine never touch each other's tables."""
    from app.config import database_url as normalise

    if not os.environ.get("DATABASE_URL"):
        yield normalise(f"sqlite:///{tmp_root / 'flowdesk-test.db'}")
        return
    url = normalise(os.environ["DATABASE_URL"])
    schema = f"flowdesk_test_{os.getpid()}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in url else "?"
    yield f"{url}{separator}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    admin.dispose()


@pytest.fixture(scope="session")
def sandbox_port():
    return free_port()


@pytest.fixture(scope="session")
def app(tmp_root, redis_url, database_url, sandbox_port):
    """The app, on a freshly migrated database (schema)."""
    from flask_migrate import upgrade

    from app import create_app
    from app.extensions import db

    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": redis_url,
            "INSTANCE_DIR": str(tmp_root / "instance"),
            "DEMO_MODE": True,
            "FLOWDESK_VARS": {"sandbox_url": f"http://127.0.0.1:{sandbox_port}/sandbox"},
            "CHECKPOINT_SECONDS": 0.05,
            "HTTP_STEP_TIMEOUT": 10,
            # Salted like production, but cheap: scrypt costs ~0.2 s per hash and tests make hundreds.
            "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
        }
    )
    with app.app_context():
        upgrade()
        db.session.remove()
    yield app
    with app.app_context():  # close pooled connections now, not in a garbage collection after the session ends
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(autouse=True)
def _fresh_state(request):
    """A fresh database and an empty Redis database for every test that uses the app."""
    if "app" not in request.fixturenames:
        yield
        return
    app = request.getfixturevalue("app")
    from app.extensions import db, queues

    from app.services import definitions

    with app.app_context():
        _empty_tables(db)
        definitions.forget()  # emptied tables give out version ids again; a real database never does
        queues.connection.flushdb()
        queues.connection.set(SESSION_MARK, os.getpid(), ex=3 * 3600)
    yield
    with app.app_context():
        db.session.remove()


def _empty_tables(db) -> None:
    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    with db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
            conn.commit()
            return
        # SQLite ignores PRAGMA foreign_keys inside a transaction: switch it off before the DELETEs and back
        # on after the commit, or this pooled connection would go on without foreign keys for later tests.
        conn.execute(sa.text("PRAGMA foreign_keys=OFF"))
        for name in tables:
            conn.execute(sa.text(f"DELETE FROM {name}"))
        if conn.execute(sa.text("SELECT 1 FROM sqlite_master WHERE name='sqlite_sequence'")).first():
            conn.execute(sa.text("DELETE FROM sqlite_sequence"))
        conn.commit()
        conn.execute(sa.text("PRAGMA foreign_keys=ON"))
        conn.commit()
        assert conn.execute(sa.text("PRAGMA foreign_keys")).scalar() == 1


@pytest.fixture
def ctx(app):
    """An application context for service-level tests."""
    with app.app_context():
        yield


@pytest.fixture
def session(ctx):
    from app.extensions import db

    return db.session


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make_user(app):
    """Create a user with a role; returns the user's email."""
    from app.extensions import db
    from app.services.users import create_user

    def make(role: str, email: str | None = None) -> str:
        email = email or f"{role}@test.example"
        with app.app_context():
            create_user(db.session, email, PASSWORD, role, name=role.capitalize())
            db.session.commit()
        return email

    return make


def csrf_token(client, path="/login") -> str:
    """The CSRF token a page carries, as a browser would read it."""
    html = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', html) or re.search(r'"X-CSRFToken": "([^"]+)"', html)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


@pytest.fixture
def login_as(client, make_user):
    """Sign the test client in as a new user with `role`; returns the email."""

    def login(role: str) -> str:
        email = make_user(role)
        token = csrf_token(client)
        response = client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
        assert response.status_code == 302, response.get_data(as_text=True)
        return email

    return login


@pytest.fixture
def load_workflow(app):
    """Load and publish a workflow definition; returns its key."""
    from app.extensions import db
    from app.services.workflows import load_definition

    def load(definition: dict) -> str:
        with app.app_context():
            result = load_definition(db.session, definition)
            db.session.commit()
            return result.workflow.key

    return load


@pytest.fixture
def demo_workflows(app):
    """Seed the demo users and workflows as `make run` does."""
    from app.extensions import db
    from app.services.demo import seed

    with app.app_context():
        list(seed(db.session))
        db.session.commit()


@pytest.fixture(scope="session")
def live_server(app, sandbox_port):
    """The app served over real HTTP (the sandbox API for http_request steps, and the browser tests)."""
    server = make_server("127.0.0.1", sandbox_port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sandbox_port}"
    server.shutdown()


@pytest.fixture
def drain(app, live_server):
    """Run real RQ work: a FlowdeskWorker in burst mode, plus rq-scheduler for parked runs.

    Returns a function that works until no job is queued or scheduled (or `timeout` passes).
    """
    from app.extensions import queues
    from tests.factories import work_once

    def run(queue_names=("default",), timeout: float = 30.0) -> None:
        with app.app_context():
            scheduler = queues.scheduler()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                scheduler.enqueue_jobs()
                if any(queues.queue(n).count for n in queue_names):
                    work_once(app, queue_names)
                    continue
                if scheduler.count() == 0:
                    return
                time.sleep(0.1)
            raise AssertionError("jobs were still queued or scheduled when the drain timed out")

    return run


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test that started worker or scheduler processes shows what they printed during the test."""
    report = yield
    if report.when == "call" and report.failed:
        for path, start in getattr(item, "process_logs", []):
            text = Path(path).read_text(errors="replace")[start:]
            report.sections.append((f"Captured {Path(path).name}", text[-20000:]))
    return report


@pytest.fixture
def flask_process(request, app, live_server, redis_url, database_url, tmp_root):
    """Start a real `flask --app wsgi ...` command (worker, scheduler) in a subprocess, as in production.

    `flask_process("worker", "default", env={...})` returns the Popen; extra `env` entries override the
    test settings. Every process still running is stopped after the test.
    """
    base_env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "FLOWDESK_INSTANCE": str(tmp_root / "instance"),
        "FLOWDESK_VARS": '{"sandbox_url": "%s/sandbox"}' % live_server,
        "FLOWDESK_OUTBOUND_ALLOW": live_server.split("//", 1)[1],
        "FLOWDESK_CHECKPOINT_SECONDS": "0.05",
        "SECRET_KEY": "test-secret",
    }
    logs = tmp_root / "process-logs"
    logs.mkdir(exist_ok=True)
    procs, outs = [], []
    request.node.process_logs = []  # (log file, offset where this test's output starts), for a failure's report

    def start(*args: str, env: dict | None = None) -> subprocess.Popen:
        out = open(logs / f"{args[0]}.log", "a")
        outs.append(out)
        request.node.process_logs.append((out.name, out.tell()))
        proc = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT, env={**base_env, **(env or {})},
            stdout=out, stderr=out,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for out in outs:
        out.close()


@pytest.fixture
def worker_processes(flask_process):
    """A real `flask worker` and `flask scheduler` in subprocesses, as in production."""
    return [flask_process("worker", "default"), flask_process("scheduler", "--interval", "0.5")]
