"""`make run` keeps the console up: a worker that dies is restarted, and Ctrl-C still stops everything."""
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import redis
from rq import Worker

from app.embedded import socket_url, stop_embedded_redis
from tests.conftest import ROOT, free_port
from tests.factories import child_pids, wait_for


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def _child(launcher: subprocess.Popen, word: str) -> int | None:
    """The pid of the launcher's child whose command line runs `word` (worker, scheduler, gunicorn)."""
    return next((pid for pid in child_pids(launcher.pid) if f" {word}" in _command(pid)), None)


def _descendants(pid: int) -> list[int]:
    children = child_pids(pid)
    return children + [grandchild for child in children for grandchild in _descendants(child)]


def _running(launcher: subprocess.Popen, output: Path) -> bool:
    assert launcher.poll() is None, f"the launcher exited with {launcher.returncode}:\n{output.read_text()}"
    return True


def _serves(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _answers(url: str) -> bool:
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=0.5) as client:
            return bool(client.ping())
    except (redis.ConnectionError, FileNotFoundError):
        return False


@pytest.mark.usefixtures("app")  # with DATABASE_URL / REDIS_URL set: start from empty tables and Redis database
def test_the_launcher_restarts_a_killed_worker_and_ctrl_c_stops_everything(tmp_path, request):
    port = free_port()
    instance = tmp_path / "instance"
    env = {**os.environ, "PORT": str(port), "FLOWDESK_INSTANCE": str(instance), "SECRET_KEY": "test-secret"}
    env.pop("FLOWDESK_VARS", None)
    for name, fixture in (("REDIS_URL", "redis_url"), ("DATABASE_URL", "database_url")):
        if os.environ.get(name):
            env[name] = request.getfixturevalue(fixture)
    redis_url = env.get("REDIS_URL") or socket_url(instance)
    output = tmp_path / "launcher.log"
    with open(output, "w") as out:
        # A session of its own, like `make run` in a terminal: Ctrl-C signals the whole process group.
        launcher = subprocess.Popen([sys.executable, "-m", "app.launcher"], cwd=ROOT, env=env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
    connection = None

    def registered(pid: int) -> bool:
        return any(w.pid == pid for w in Worker.all(connection=connection))

    def replaced(pid: int):
        _running(launcher, output)
        new = _child(launcher, "worker")
        return new if new != pid else None

    try:
        wait_for(lambda: _running(launcher, output) and _serves(port), timeout=60, what="the console serving")
        connection = redis.Redis.from_url(redis_url)
        worker = wait_for(lambda: _child(launcher, "worker"), what="a worker child")
        wait_for(lambda: registered(worker), what="the worker ready")

        os.kill(worker, signal.SIGKILL)
        again = wait_for(lambda: replaced(worker), timeout=30, what="a new worker child")
        wait_for(lambda: registered(again), timeout=30, what="the new worker ready")
        assert "flowdesk: worker was killed by SIGKILL; restarting it in 1 s" in output.read_text()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=10) as response:
            assert response.status == 200

        # It dies again soon: the delay doubles, and Ctrl-C during that wait still stops everything.
        processes = _descendants(launcher.pid)
        os.kill(again, signal.SIGKILL)
        wait_for(lambda: "worker was killed by SIGKILL; restarting it in 2 s" in output.read_text(),
                 what="the second restart planned")
        os.killpg(launcher.pid, signal.SIGINT)
        assert launcher.wait(timeout=30) == 0, output.read_text()
        assert [pid for pid in processes if Path(f"/proc/{pid}").exists()] == []
        log = output.read_text()
        assert log.count("worker started again") == 1, log
        assert "flowdesk: stopped" in log
        if not os.environ.get("REDIS_URL"):
            assert not _answers(redis_url), "the embedded redis-server outlived the launcher"
    finally:
        if connection is not None:
            connection.close()
        if launcher.poll() is None:
            launcher.send_signal(signal.SIGTERM)
            try:
                launcher.wait(timeout=30)
            except subprocess.TimeoutExpired:
                launcher.kill()
                launcher.wait()
        if not os.environ.get("REDIS_URL"):
            stop_embedded_redis(instance)
