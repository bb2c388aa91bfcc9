"""Response times of the history pages, a big run's page and its polls, against a production-sized database.

    .venv/bin/python bench/history.py [--runs N] [--lines M] [--requests R]

Loads N runs (default 100,000) over the last 90 days across 20 workflows, and one running run with M log lines
(default 1,000,000) written with SQL (generate_series on PostgreSQL, a recursive CTE on SQLite), then ANALYZE.
Starts gunicorn on `wsgi:app` as `make run` does (2 gthread workers, 8 threads), signs in with a real session and
times R requests (default 50, after 3 unmeasured) to each page, one at a time, printing p50 and p95 next to the
target. Then measures what `gc.freeze()` in wsgi.py changes: the objects a full collection walks and its pause, in a
process that imported wsgi, frozen and unfrozen. The exit status is 1 only when a request answers an unexpected
status.

Uses DATABASE_URL (PostgreSQL, in the schema flowdesk_bench, dropped at the end) and REDIS_URL (database 14) when
set, otherwise a SQLite file and a private redis-server in a temp directory that is deleted at the end.
"""
import argparse
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from bench.throughput import BENCH_SCHEMA, BenchError, setup, worker_env  # noqa: E402

WORKFLOWS = 20
DAYS = 90
POLL_TARGET_MS = 50  # DESIGN.md: 200 browsers polling once a second on 2 cores get p95 <= 50 ms
STATUSES = ["completed"] * 7 + ["failed", "cancelled", "error"]
TRIGGERS = ["manual", "schedule", "api", "webhook", "record"]
GC_PROBE = """
import gc, json, time
import wsgi
def full():
    best = []
    for _ in range(5):
        t = time.perf_counter(); gc.collect(); best.append((time.perf_counter() - t) * 1000)
    return round(sorted(best)[2], 2)
frozen = {"tracked": len(gc.get_objects()), "frozen": gc.get_freeze_count(), "full_gc_ms": full()}
gc.unfreeze()
unfrozen = {"tracked": len(gc.get_objects()), "frozen": gc.get_freeze_count(), "full_gc_ms": full()}
print(json.dumps({"frozen": frozen, "unfrozen": unfrozen}))
"""


def load(app, n: int, m: int) -> tuple[int, str, str]:
    """Write the workflows, the runs and the big run's log; returns (big run id, a workflow key, a record key)."""
    from app.extensions import db
    from app.models import Run, Workflow
    from app.services.workflows import load_definition
    from app.timeutil import utcnow

    with app.app_context():
        for number in range(1, WORKFLOWS + 1):
            load_definition(db.session, {"key": f"bench-{number:02d}", "name": f"Bench workflow {number:02d}",
                                         "steps": [{"key": "a", "type": "noop"}]})
        db.session.commit()
        workflows = db.session.scalars(sa.select(Workflow).where(Workflow.key.like("bench-%"))).all()
        history_key = workflows[3].key
        now = utcnow()
        step = timedelta(days=DAYS) / max(n, 1)
        rows = []
        for i in range(n):
            w = workflows[i % len(workflows)]
            queued = now - timedelta(days=DAYS) + step * i
            rows.append({
                "workflow_id": w.id, "version_id": w.published_version_id, "workflow_key": w.key,
                "workflow_name": w.name, "status": STATUSES[i % len(STATUSES)], "trigger": TRIGGERS[i % 5],
                "trigger_detail": "", "queue": "default", "params": {}, "attempt": 1, "progress_done": 1,
                "progress_total": 1, "queued_at": queued, "started_at": queued + timedelta(seconds=1),
                "finished_at": queued + timedelta(seconds=5), "dry_run": False, "record_key": f"INV-{i:07d}",
            })
            if len(rows) == 10_000:
                db.session.execute(sa.insert(Run), rows)
                rows = []
        w = workflows[0]
        rows.append({
            "workflow_id": w.id, "version_id": w.published_version_id, "workflow_key": w.key,
            "workflow_name": w.name, "status": "running", "trigger": "manual", "trigger_detail": "",
            "queue": "default", "params": {}, "attempt": 1, "progress_done": 0, "progress_total": 1,
            "queued_at": now, "started_at": now, "dry_run": False,
        })
        db.session.execute(sa.insert(Run), rows)
        db.session.commit()
        big = db.session.scalar(sa.select(sa.func.max(Run.id)))
        if db.engine.dialect.name == "postgresql":
            series = "SELECT g AS i FROM generate_series(1, :m) AS g"
            stamp = "now() AT TIME ZONE 'utc'"
            meta = "CAST(NULL AS JSON)"
        else:
            series = "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < :m) SELECT i FROM s"
            stamp = "strftime('%Y-%m-%d %H:%M:%f', 'now')"
            meta = "NULL"
        db.session.execute(sa.text(f"""
            INSERT INTO log_entries (run_id, created_at, level, level_rank, record_key, message, meta, technical)
            SELECT :run, {stamp},
                   CASE WHEN i % 1000 = 0 THEN 'warning' ELSE 'info' END,
                   CASE WHEN i % 1000 = 0 THEN 2 ELSE 1 END,
                   CASE WHEN i % 1000 = 0 THEN 'K-' || i ELSE NULL END,
                   'Processed item ' || i, {meta}, false
            FROM ({series}) AS n
        """), {"run": big, "m": m})
        db.session.commit()
        with db.engine.connect() as conn:
            conn.execute(sa.text("ANALYZE"))
            conn.commit()
        db.session.remove()
    return big, history_key, f"INV-{n // 2:07d}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_web(env: dict, port: int, log: Path) -> subprocess.Popen:
    """gunicorn on wsgi:app, as app/launcher.py starts it; returns once it answers."""
    command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "8",
               "--worker-class", "gthread", "--graceful-timeout", "5", "--no-control-socket", "wsgi:app"]
    web = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                           start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/login", timeout=5)
            return web
        except requests.RequestException:
            if web.poll() is not None:
                raise BenchError(f"gunicorn exited with {web.returncode}")
            time.sleep(0.2)
    raise BenchError("gunicorn did not answer within 60 s")


def sign_in(base: str) -> requests.Session:
    http = requests.Session()
    html = http.get(f"{base}/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    answer = http.post(f"{base}/login", data={"email": "bench@bench.example", "password": "bench-password",
                                             "csrf_token": token}, allow_redirects=False)
    if answer.status_code != 302:
        raise BenchError(f"sign-in answered {answer.status_code}")
    return http


def measure(http: requests.Session, url: str, count: int, expect: int, headers=None) -> tuple[float, float]:
    """p50 and p95 in ms of `count` requests to `url`, each of which must answer `expect`."""
    times = []
    for number in range(count + 3):
        started = time.perf_counter()
        answer = http.get(url, headers=headers or {}, allow_redirects=False)
        elapsed = (time.perf_counter() - started) * 1000
        if answer.status_code != expect:
            raise BenchError(f"{url} answered {answer.status_code}, expected {expect}")
        if number >= 3:
            times.append(elapsed)
    times.sort()
    return statistics.median(times), times[max(0, round(0.95 * len(times)) - 1)]


def gc_effect(env: dict) -> dict:
    import json

    probe = subprocess.run([sys.executable, "-c", GC_PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=120)
    if probe.returncode:
        raise BenchError(f"gc probe failed: {probe.stderr[-500:]}")
    return json.loads(probe.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000, help="finished runs to load (default 100,000)")
    parser.add_argument("--lines", type=int, default=1_000_000, help="log lines of the big run (default 1,000,000)")
    parser.add_argument("--requests", type=int, default=50, help="measured requests per page (default 50)")
    parser.add_argument("--keep", action="store_true", help="keep the temp directory (gunicorn log, SQLite file)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.lines < 1 or args.requests < 1:
        parser.error("--runs, --lines and --requests must be at least 1")

    # With a DATABASE_URL the app refuses to start without a SECRET_KEY; a throwaway one serves the bench.
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(32))
    tmp = Path(tempfile.mkdtemp(prefix="flowdesk-history-"))
    app = web = None
    try:
        app, redis_url, database_url, _ = setup(tmp)
        started = time.perf_counter()
        big, workflow_key, record_key = load(app, args.runs, args.lines)
        loaded = time.perf_counter() - started
        env = worker_env(app, redis_url, database_url, tmp)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        web = start_web(env, port, tmp / "gunicorn.log")
        http = sign_in(base)

        panel = http.get(f"{base}/runs/{big}", headers={"HX-Request": "true", "HX-Target": "run-panel"}).text
        poll = re.search(rf'hx-get="(/runs/{big}\?seen=[0-9a-f]+)"', panel).group(1)
        page = http.get(f"{base}/runs/{big}").text
        last = re.search(rf'hx-get="/runs/{big}/log\?after=(\d+)"', page).group(1)
        hx = {"HX-Request": "true"}
        cases = [
            ("/runs", "/runs", 200, None, None),
            ("/runs filtered", "/runs?status=failed&trigger=schedule&range=7d", 200, None, None),
            ("/runs?key=", f"/runs?key={record_key}", 200, None, None),
            ("workflow history", f"/workflows/{workflow_key}/history", 200, None, None),
            ("big run page", f"/runs/{big}", 200, None, None),
            ("panel poll, unchanged", poll, 204, {**hx, "HX-Target": "run-panel"}, POLL_TARGET_MS),
            ("tail poll, no new lines", f"/runs/{big}/log?after={last}", 204, hx, POLL_TARGET_MS),
            ("log search in big run", f"/runs/{big}/log?q=key:K-500000", 200, hx, None),
        ]
        results = []
        for name, url, expect, headers, target in cases:
            p50, p95 = measure(http, base + url, args.requests, expect, headers)
            results.append((name, expect, p50, p95, target))
        gc_numbers = gc_effect(env)

        with app.app_context():
            from app.extensions import db

            dialect = db.engine.dialect.name
        print(f"database        : {dialect}")
        print(f"runs            : {args.runs} over {DAYS} days, {WORKFLOWS} workflows; big run #{big} with "
              f"{args.lines} log lines (loaded in {loaded:.1f} s)")
        print(f"requests        : {args.requests} per page, one at a time, gunicorn 2 workers x 8 threads")
        print()
        print(f"{'page':<26} {'status':>6} {'p50 ms':>8} {'p95 ms':>8}  target p95")
        for name, expect, p50, p95, target in results:
            verdict = f"<= {target} ms: {'PASS' if p95 <= target else 'FAIL'}" if target else "-"
            print(f"{name:<26} {expect:>6} {p50:8.1f} {p95:8.1f}  {verdict}")
        print()
        f, u = gc_numbers["frozen"], gc_numbers["unfrozen"]
        print("full gc.collect() in a process that imported wsgi (median of 5):")
        print(f"  frozen (as served)  : {f['full_gc_ms']:7.2f} ms, {f['tracked']:7d} tracked, {f['frozen']} frozen")
        print(f"  unfrozen            : {u['full_gc_ms']:7.2f} ms, {u['tracked']:7d} tracked")
        return 0
    except BenchError as exc:
        print(f"BENCH FAILED: {exc}", file=sys.stderr)
        log = tmp / "gunicorn.log"
        if log.exists():
            print("\n".join(log.read_text(errors="replace").splitlines()[-20:]), file=sys.stderr)
        return 1
    finally:
        if web is not None:
            os.killpg(web.pid, signal.SIGTERM)
            web.wait(timeout=30)
        if app is not None and os.environ.get("DATABASE_URL"):
            from app.extensions import db

            with app.app_context():
                db.session.remove()
                db.engine.dispose()
            admin = sa.create_engine(os.environ["DATABASE_URL"])
            with admin.begin() as conn:
                conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {BENCH_SCHEMA} CASCADE"))
            admin.dispose()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")


if __name__ == "__main__":
    sys.exit(main())
