"""Throughput of the Flowdesk engine against plain RQ, measured in one run.

    .venv/bin/python bench/throughput.py [--runs N] [--workers W] [--rounds R]

Engine phase: W real `flask worker default` processes (Flowdesk's production worker, FlowdeskWorker, which runs
jobs in its own process) are started and registered first; then the clock starts, N runs of a three-step no-op
workflow go through the real start path (start_run + commit, which enqueues jobs.runs.execute_run) and the clock
stops when every run is `completed` in the database.

Two plain-RQ phases, each on W fresh workers: the clock starts, N jobs of jobs.noop.noop are enqueued on the same
queue, and the clock stops when all N are in the queue's finished registry.
- plain RQ's default worker (`rq worker`, rq.Worker: a work horse forked per job), what a user would pick
  instead of Flowdesk;
- the same no-op jobs drained by Flowdesk's own worker class (`flask worker`): the limit of what the engine
  could do on it.

The three phases run R times in turn (a round: engine, forking, same class), so that a slow stretch of a shared
machine falls on every phase alike rather than on one. Each round gives its three rates and its two ratios, engine /
plain RQ forking (target >= 1.0) and engine / no-op jobs on Flowdesk's worker (target >= 0.5, judged on PostgreSQL
only: the issue sets it there; on SQLite it is printed); the report gives every round, and the median of each rate
and of each ratio over the rounds, against which the targets are judged. It
names the worker classes, and says where the engine's time went: the start path per run, and the CPU per run of each
process (this one, the workers, and PostgreSQL and Redis when they run on this machine, from /proc) in the engine
phase and the same-class no-op phase (medians over the rounds). The exit status is 1 when an engine run did not end
`completed` with three completed step runs (or a phase timed out), or a target is missed.

Uses DATABASE_URL (PostgreSQL; in a schema of its own, flowdesk_bench, dropped at the end) and REDIS_URL
(database number 14 is flushed and used) when set; otherwise a SQLite file and a private redis-server in a
temp directory that is deleted at the end.
"""
import argparse
import os
import secrets
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

BENCH_REDIS_DB = 14
BENCH_SCHEMA = "flowdesk_bench"
QUEUE = "default"
# What production runs: `flask worker default` (FlowdeskWorker) from the checkout.
WORKER_COMMAND = [sys.executable, "-m", "flask", "--app", "wsgi", "worker"]
# Plain RQ's own worker, its default class (rq.Worker, forking), as `rq worker` starts it.
RQ_WORKER_COMMAND = [str(Path(sys.executable).parent / "rq"), "worker", "--path", str(ROOT)]
TARGET_VS_FORKING = 1.0
TARGET_VS_SAME_CLASS = 0.5
# Where issue 7 ("Throughput on PostgreSQL") sets each target: the first on PostgreSQL and on SQLite as well, the
# second, the limit, on PostgreSQL. On SQLite the second ratio is printed but not judged.
JUDGED_ON = {"versus_forking": ("postgresql", "sqlite"), "versus_same": ("postgresql",)}
PHASES = ("engine", "forking", "same")
POLL = 0.02
DEFINITION = {
    "key": "bench-noop",
    "name": "Bench no-op",
    "steps": [{"key": "a", "type": "noop"}, {"key": "b", "type": "noop"}, {"key": "c", "type": "noop"}],
}


class BenchError(Exception):
    pass


def with_db_number(url: str, number: int) -> str:
    if url.startswith("unix://"):
        return f"{url.split('?')[0]}?db={number}"
    base = re.sub(r"/\d+$", "", url.split("?")[0].rstrip("/"))
    return f"{base}/{number}"


class Workers:
    """W `flask worker` subprocesses, as production runs them."""

    def __init__(self, count: int, tag: str, env: dict, logs: Path, connection, command=WORKER_COMMAND):
        self.names = [f"bench-{tag}-{i}-{os.getpid()}" for i in range(count)]
        self.command = command
        self.env = env
        self.logs = logs
        self.connection = connection
        self.procs: list[subprocess.Popen] = []

    def start(self, timeout: float = 60.0) -> None:
        from rq import Worker

        for name in self.names:
            out = open(self.logs / f"{name}.log", "w")
            self.procs.append(
                subprocess.Popen(
                    [*self.command, QUEUE, "--name", name, *self._url()],
                    cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                )
            )
            out.close()
        # Wait until every worker is registered and idle (blocked on the queue) before any job exists.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise BenchError(f"a worker exited early (code {proc.returncode}); see {self.logs}")
            ready = {w.name for w in Worker.all(connection=self.connection) if w.get_state() == "idle"}
            if ready >= set(self.names):
                return
            time.sleep(POLL)
        raise BenchError(f"workers did not register within {timeout:.0f} s; see {self.logs}")

    def _url(self) -> list[str]:
        return ["--url", self.env["REDIS_URL"]] if self.command is not WORKER_COMMAND else []

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = []

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise BenchError(f"a worker died (code {proc.returncode}); see {self.logs}")


class CpuMeter:
    """CPU seconds used during a phase by this process (the start or enqueue loop), the phase's workers, and the
    PostgreSQL and Redis servers when they run on this machine, read from /proc (Linux). A figure it cannot read
    (no /proc, or a server elsewhere) is None."""

    SERVERS = {"postgres": ("postgres",), "redis": ("redis-server", "redis")}

    def __init__(self, workers: Workers):
        self.workers = workers
        self.first = self.used = None

    def begin(self) -> "CpuMeter":
        self.first = self._sample()
        return self

    def end(self) -> None:
        """Read the figures again (before the workers stop)."""
        last = self._sample()
        self.used = {k: None if last[k] is None or self.first[k] is None else last[k] - self.first[k] for k in last}

    def per(self, n: int) -> dict:
        """Milliseconds per run (or job) of each process group."""
        return {k: None if v is None else v * 1000 / n for k, v in (self.used or {}).items()}

    def _sample(self) -> dict:
        sample = {"bench": time.process_time(), "workers": self._cpu([p.pid for p in self.workers.procs])}
        for name, comms in self.SERVERS.items():
            pids = self._pids(comms)
            sample[name] = self._cpu(pids) if pids else None
        return sample

    @staticmethod
    def _cpu(pids) -> float | None:
        ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        total = 0.0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                return None if not Path("/proc").is_dir() else total
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
        return total

    @staticmethod
    def _pids(comms) -> list[int]:
        proc = Path("/proc")
        if not proc.is_dir():
            return []
        pids = []
        for entry in proc.iterdir():
            if entry.name.isdigit():
                try:
                    if entry.joinpath("comm").read_text().strip().startswith(comms):
                        pids.append(int(entry.name))
                except OSError:
                    continue
        return pids


def setup(tmp: Path, schema: str = BENCH_SCHEMA, fresh: bool = True):
    """Build the app on a fresh database and Redis database; returns (app, redis_url, database_url, embedded).
    With `fresh` False, a PostgreSQL `schema` left by an earlier run is kept (and migrated to the head)."""
    from flask_migrate import upgrade

    from app import create_app
    from app.config import database_url as normalise
    from app.extensions import db, queues
    from app.services.users import create_user
    from app.services.workflows import load_definition

    embedded = None
    if os.environ.get("REDIS_URL"):
        redis_url = with_db_number(os.environ["REDIS_URL"], BENCH_REDIS_DB)
    else:
        from app.embedded import ensure_embedded_redis

        embedded = tmp / "redis"
        url, _ = ensure_embedded_redis(embedded, persist=False)
        redis_url = with_db_number(url, BENCH_REDIS_DB)
    database_url = normalise(os.environ.get("DATABASE_URL") or f"sqlite:///{tmp / 'bench.db'}")
    if database_url.startswith("postgresql"):
        # A schema of its own (dropped at the end), so the bench never touches anyone's tables.
        admin = sa.create_engine(database_url)
        with admin.begin() as conn:
            if fresh:
                conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {schema}"))
        admin.dispose()
        database_url += ("&" if "?" in database_url else "?") + f"options=-csearch_path%3D{schema}"

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": redis_url,
            "INSTANCE_DIR": str(tmp / "instance"),
            "DEMO_MODE": False,
            # With a DATABASE_URL the app refuses to start without a SECRET_KEY; a throwaway one serves the bench.
            "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(32),
        }
    )
    with app.app_context():
        queues.connection.flushdb()
        upgrade()
        from app.models import User

        if db.session.scalar(sa.select(User.id).where(User.email == "bench@bench.example")) is None:
            create_user(db.session, "bench@bench.example", "bench-password", "operator", name="Bench")
            load_definition(db.session, DEFINITION)
        db.session.commit()
        db.session.remove()
    return app, redis_url, database_url, embedded


def worker_env(app, redis_url: str, database_url: str, tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "FLOWDESK_DEMO"}
    env.update(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "FLOWDESK_INSTANCE": str(tmp / "instance"),
            "SECRET_KEY": app.config["SECRET_KEY"],
            # Same checkpoint interval in the workers as in this process (the default unless set).
            "FLOWDESK_CHECKPOINT_SECONDS": str(app.config["CHECKPOINT_SECONDS"]),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def engine_phase(app, n: int, w: int, env: dict, logs: Path, tag: str = "engine") -> dict:
    """N runs started and completed (runs of earlier rounds may already be in the database)."""
    from app.extensions import db, queues
    from app.models import Run, User, Workflow
    from app.services.runs import start_run

    with app.app_context():
        conn = queues.connection
        workers = Workers(w, tag, env, logs, conn)
        try:
            workers.start()
            workflow = db.session.scalar(sa.select(Workflow).where(Workflow.key == DEFINITION["key"]))
            user = db.session.scalar(sa.select(User).where(User.email == "bench@bench.example"))
            # This round's runs only, found by their ids (a range of the primary key), as cheap to count as the
            # plain-RQ phases' registry: a count over every round's runs would cost the engine more at each poll.
            first = db.session.scalar(sa.select(sa.func.coalesce(sa.func.max(Run.id), 0)))
            by_status = sa.select(Run.status, sa.func.count()).where(Run.id > first).group_by(Run.status)

            meter = CpuMeter(workers).begin()
            t0 = time.perf_counter()
            for _ in range(n):
                start_run(db.session, workflow, user, {}, trigger="api")
                db.session.commit()
            t_started = time.perf_counter()
            deadline = time.monotonic() + max(120.0, n * 0.5)
            while True:
                with db.engine.connect() as c:
                    counts = dict(c.execute(by_status).all())
                done = counts.get("completed", 0)
                if done >= n:
                    break
                if time.monotonic() > deadline:
                    raise BenchError(f"engine phase timed out: {done}/{n} runs completed; see {logs}")
                bad = sum(counts.get(s, 0) for s in ("failed", "error", "cancelled"))
                if bad:
                    raise BenchError(f"engine phase: {bad} run(s) ended failed/error/cancelled; see {logs}")
                workers.check_alive()
                time.sleep(POLL)
            t1 = time.perf_counter()
            meter.end()
        finally:
            workers.stop()
            db.session.remove()
        return {"seconds": t1 - t0, "start_seconds": t_started - t0, "rate": n / (t1 - t0), "cpu": meter.per(n)}


def verify_engine(app, n: int) -> list[str]:
    """Every run completed with three completed step runs."""
    from app.extensions import db
    from app.models import Run, StepRun

    problems = []
    with app.app_context():
        runs = db.session.execute(sa.select(Run.id, Run.status)).all()
        if len(runs) != n:
            problems.append(f"expected {n} runs, found {len(runs)}")
        steps = dict(
            db.session.execute(
                sa.select(StepRun.run_id, sa.func.count())
                .where(StepRun.status == "completed")
                .group_by(StepRun.run_id)
            ).all()
        )
        for run_id, status in runs:
            if status != "completed":
                problems.append(f"run {run_id} is {status}")
            elif steps.get(run_id, 0) != 3:
                problems.append(f"run {run_id} has {steps.get(run_id, 0)} completed step runs, not 3")
        db.session.remove()
    return problems


def raw_phase(app, n: int, w: int, env: dict, logs: Path, command=WORKER_COMMAND, tag: str = "raw") -> dict:
    from rq import Queue

    from app.extensions import queues

    with app.app_context():
        conn = queues.connection
        conn.flushdb()  # drop the engine phase's jobs, registries and dead worker keys
        workers = Workers(w, tag, env, logs, conn, command)
        try:
            workers.start()
            queue = Queue(QUEUE, connection=conn)
            finished = queue.finished_job_registry
            failed = queue.failed_job_registry
            meter = CpuMeter(workers).begin()
            t0 = time.perf_counter()
            for _ in range(n):
                queue.enqueue("jobs.noop.noop")
            t_started = time.perf_counter()
            deadline = time.monotonic() + max(120.0, n * 0.5)
            while True:
                done = finished.count
                if done >= n:
                    break
                if failed.count:
                    raise BenchError(f"raw phase: {failed.count} job(s) failed; see {logs}")
                if time.monotonic() > deadline:
                    raise BenchError(f"raw phase timed out: {done}/{n} jobs finished; see {logs}")
                workers.check_alive()
                time.sleep(POLL)
            t1 = time.perf_counter()
            meter.end()
        finally:
            workers.stop()
        return {"seconds": t1 - t0, "start_seconds": t_started - t0, "rate": n / (t1 - t0), "cpu": meter.per(n)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300, help="runs (and raw jobs) per phase (default 300)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes per phase (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the three phases (default 3)")
    parser.add_argument("--keep", action="store_true", help="keep the temp directory (worker logs, SQLite file)")
    args = parser.parse_args(argv)
    n, w, r = args.runs, args.workers, args.rounds
    if n < 1 or w < 1 or r < 1:
        parser.error("--runs, --workers and --rounds must be at least 1")

    tmp = Path(tempfile.mkdtemp(prefix="flowdesk-bench-"))
    logs = tmp / "logs"
    logs.mkdir()
    embedded = None
    app = None
    try:
        app, redis_url, database_url, embedded = setup(tmp)
        from app.extensions import db

        with app.app_context():
            dialect = db.engine.dialect.name
            checkpoint = app.config["CHECKPOINT_SECONDS"]
        env = worker_env(app, redis_url, database_url, tmp)

        rounds = []
        for number in range(1, r + 1):
            engine = engine_phase(app, n, w, env, logs, tag=f"engine-r{number}")
            forking = raw_phase(app, n, w, env, logs, RQ_WORKER_COMMAND, f"rq-fork-r{number}")
            same = raw_phase(app, n, w, env, logs, WORKER_COMMAND, f"rq-same-r{number}")
            rounds.append({"engine": engine, "forking": forking, "same": same,
                           "versus_forking": engine["rate"] / forking["rate"],
                           "versus_same": engine["rate"] / same["rate"]})
        problems = verify_engine(app, n * r)

        print(f"runs N          : {n} per phase and round")
        print(f"workers W       : {w}")
        print(f"rounds R        : {r} (each: engine, plain RQ forking, plain RQ on FlowdeskWorker)")
        print(f"database        : {dialect}")
        print(f"redis           : {'REDIS_URL db %d' % BENCH_REDIS_DB if embedded is None else 'embedded'}")
        print(f"checkpoint      : {checkpoint} s")
        for number, one in enumerate(rounds, 1):
            print(f"round {number:<10}: engine {one['engine']['rate']:6.1f} runs/s "
                  f"(start loop {one['engine']['start_seconds'] / n * 1000:.1f} ms per run), "
                  f"forking {one['forking']['rate']:6.1f} jobs/s, same class {one['same']['rate']:6.1f} jobs/s; "
                  f"ratios {one['versus_forking']:.2f} and {one['versus_same']:.2f}")
        engine, forking, same = ({key: median(one[phase][key] for one in rounds)
                                  for key in ("rate", "seconds", "start_seconds")} for phase in PHASES)
        print(f"engine          : {engine['rate']:8.1f} runs/s on FlowdeskWorker (in-process), median  "
              f"(start_run+commit loop {engine['start_seconds'] / n * 1000:.1f} ms per run)")
        print(f"plain RQ        : {forking['rate']:8.1f} no-op jobs/s on rq.Worker (forking), median")
        print(f"plain RQ        : {same['rate']:8.1f} no-op jobs/s on FlowdeskWorker (in-process), median")
        for label, phase in (("engine", "engine"), ("no-op, same", "same")):
            cpu = {key: _median_or_none([one[phase]["cpu"][key] for one in rounds]) for key in rounds[0][phase]["cpu"]}
            print(f"cpu per run     : {label:<12} {_cpu_line(cpu)}")
        missed = []
        for label, key, target in (("engine / plain RQ forking", "versus_forking", TARGET_VS_FORKING),
                                   ("engine / no-op jobs on FlowdeskWorker", "versus_same", TARGET_VS_SAME_CLASS)):
            ratios = [one[key] for one in rounds]
            ratio = median(ratios)
            met = ratio >= target
            judged = dialect in JUDGED_ON[key]
            missed += [] if met or not judged else [label]
            verdict = "met" if met else "MISSED" if judged else "not met"
            verdict += "" if judged else " here (the target is judged on PostgreSQL)"
            print(f"ratio {label} = {ratio:.2f}, median of {', '.join(f'{x:.2f}' for x in ratios)} "
                  f"(target >= {target}): {verdict}")
        if problems:
            print(f"VERIFY FAILED: {len(problems)} problem(s)", file=sys.stderr)
            for line in problems[:20]:
                print(f"  {line}", file=sys.stderr)
            return 1
        print(f"verify          : all {n * r} runs completed with 3 completed step runs")
        return 1 if missed else 0
    except BenchError as exc:
        print(f"BENCH FAILED: {exc}", file=sys.stderr)
        for log in sorted(logs.glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-15:]
            print(f"--- {log.name} (last lines)", file=sys.stderr)
            print("\n".join(tail), file=sys.stderr)
        return 1
    finally:
        if app is not None and os.environ.get("DATABASE_URL"):
            from app.extensions import db

            with app.app_context():
                db.session.remove()
                db.engine.dispose()
                with db.engine.begin() as conn:
                    conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {BENCH_SCHEMA} CASCADE"))
                db.engine.dispose()
        if os.environ.get("REDIS_URL"):
            if app is not None:
                from app.extensions import queues

                with app.app_context():
                    queues.connection.flushdb()  # leave database 14 of REDIS_URL empty
        else:
            from app.embedded import stop_embedded_redis

            stop_embedded_redis(tmp / "redis")  # also when setup failed half-way
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _median_or_none(values: list):
    return None if any(v is None for v in values) else median(values)


def _cpu_line(cpu: dict) -> str:
    """CPU milliseconds per run (or job) of each process group, and their sum."""
    parts = [f"{name} {'n/a' if ms is None else f'{ms:.2f}'}" for name, ms in cpu.items()]
    total = sum(ms for ms in cpu.values() if ms is not None)
    return ", ".join(parts) + f"  (total {total:.2f} ms)"


if __name__ == "__main__":
    sys.exit(main())
