"""`python -m app.launcher`: the whole console on one machine (web, worker and scheduler).

Applies migrations, seeds the demo, starts gunicorn, one RQ worker and rq-scheduler, and stops
them all on Ctrl-C or SIGTERM. With no REDIS_URL it runs a private redis-server under instance/.
"""
import os
import signal
import socket
import subprocess
import sys
import time

from app.config import instance_dir
from app.embedded import ensure_embedded_redis, stop_embedded_redis


def _flask(*args: str) -> list[str]:
    return [sys.executable, "-m", "flask", "--app", "wsgi", *args]


def launch(port: int | None = None) -> int:
    """Start everything and block until interrupted; returns the exit status."""
    env = os.environ.copy()
    port = port or int(env.get("PORT", "5000"))
    env["PORT"] = str(port)
    env.setdefault("FLOWDESK_DEMO", "1")
    env.setdefault("PYTHONUNBUFFERED", "1")
    started_redis = False
    instance = instance_dir()
    if not env.get("REDIS_URL"):
        env["REDIS_URL"], started_redis = ensure_embedded_redis(instance)
    procs: list[subprocess.Popen] = []
    stopping = False

    def request_stop(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    status = 0
    try:
        subprocess.run(_flask("db", "upgrade"), env=env, check=True)
        if env["FLOWDESK_DEMO"] not in ("0", "false", ""):
            subprocess.run(_flask("demo", "seed"), env=env, check=True)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2",
             "--threads", "8", "--worker-class", "gthread", "--graceful-timeout", "5", "wsgi:app"],
            env=env,
        ))
        procs.append(subprocess.Popen(_flask("worker", "default"), env=env))
        procs.append(subprocess.Popen(_flask("scheduler", "--interval", "1"), env=env))
        if not _wait_for_port(port, procs[0]):
            raise RuntimeError(f"the web server did not start on port {port} (is the port taken? set PORT)")
        print(
            f"\n  Flowdesk is running at http://127.0.0.1:{port}/\n"
            "  Sign in as admin@example.com / flowdesk-demo (also manager@, operator@, viewer@,\n"
            "  support@example.com with the same password). Ctrl-C stops everything.\n",
            flush=True,
        )
        while not stopping:
            for proc in procs:
                if proc.poll() is not None:
                    print(f"flowdesk: {' '.join(proc.args[-3:])} exited with {proc.returncode}; stopping",
                          file=sys.stderr, flush=True)
                    status = proc.returncode or 1
                    stopping = True
                    break
            time.sleep(0.2)
    except RuntimeError as exc:
        print(f"flowdesk: {exc}", file=sys.stderr)
        status = 1
    except subprocess.CalledProcessError as exc:
        print(f"flowdesk: {' '.join(exc.cmd[-2:])} failed with {exc.returncode}", file=sys.stderr)
        status = exc.returncode or 1
    finally:
        _stop_all(procs)
        if started_redis:
            stop_embedded_redis(instance)
        print("flowdesk: stopped", flush=True)
    return status


def _wait_for_port(port: int, web: subprocess.Popen, timeout: float = 30.0) -> bool:
    """Wait until the web server accepts connections; False if it exited or never did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and web.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def _stop_all(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    sys.exit(launch())
