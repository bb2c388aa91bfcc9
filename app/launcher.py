"""`python -m app.launcher`: the whole console on one machine (web, worker and scheduler).

Applies migrations, seeds the demo, starts gunicorn, one RQ worker and rq-scheduler, restarts any
of them that dies (after a short, growing delay), and stops them all on Ctrl-C or SIGTERM. With no
REDIS_URL it runs a private redis-server under instance/.
"""
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

from app.config import instance_dir
from app.embedded import ensure_embedded_redis, stop_embedded_redis

FIRST_RESTART_DELAY = 1.0  # seconds before a process that died is started again
MAX_RESTART_DELAY = 30.0  # the delay doubles each time it dies again soon, up to this
STEADY_SECONDS = 60.0  # a process that stayed up this long is restarted after the first delay again


def _flask(*args: str) -> list[str]:
    return [sys.executable, "-m", "flask", "--app", "wsgi", *args]


@dataclass
class Child:
    """One process of the console, started again whenever it dies."""

    name: str
    args: list[str]
    env: dict
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    delay: float = FIRST_RESTART_DELAY
    restart_at: float = 0.0

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, env=self.env)
        self.started_at = time.monotonic()

    def supervise(self) -> None:
        """Notice that the process died and plan its restart, or restart it once its delay is over."""
        now = time.monotonic()
        if self.proc is None:
            if now >= self.restart_at:
                self.start()
                print(f"flowdesk: {self.name} started again (pid {self.proc.pid})", file=sys.stderr, flush=True)
            return
        if self.proc.poll() is None:
            return
        if now - self.started_at >= STEADY_SECONDS:
            self.delay = FIRST_RESTART_DELAY
        print(f"flowdesk: {self.name} {_how_it_ended(self.proc.returncode)}; restarting it in {self.delay:g} s",
              file=sys.stderr, flush=True)
        self.proc = None
        self.restart_at = now + self.delay
        self.delay = min(self.delay * 2, MAX_RESTART_DELAY)


def _how_it_ended(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with {returncode}"


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
    children = [
        Child("web", [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2",
                      "--threads", "8", "--worker-class", "gthread", "--graceful-timeout", "5", "--no-control-socket",
                      "wsgi:app"], env),
        Child("worker", _flask("worker", "default"), env),
        Child("scheduler", _flask("scheduler", "--interval", "1"), env),
    ]
    web = children[0]
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
        for child in children:
            child.start()
        if not _wait_for_port(port, web.proc):
            raise RuntimeError(f"the web server did not start on port {port} (is the port taken? set PORT)")
        print(
            f"\n  Flowdesk is running at http://127.0.0.1:{port}/\n"
            "  Sign in as admin@example.com / flowdesk-demo (also manager@, operator@, viewer@,\n"
            "  support@example.com with the same password). Ctrl-C stops everything.\n",
            flush=True,
        )
        while not stopping:
            for child in children:
                if stopping:  # Ctrl-C reaches the children too: never restart one that is stopping with us
                    break
                child.supervise()
            time.sleep(0.2)
    except RuntimeError as exc:
        print(f"flowdesk: {exc}", file=sys.stderr)
        status = 1
    except subprocess.CalledProcessError as exc:
        print(f"flowdesk: {' '.join(exc.cmd[-2:])} failed with {exc.returncode}", file=sys.stderr)
        status = exc.returncode or 1
    finally:
        _stop_all([child.proc for child in children if child.proc is not None])
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
