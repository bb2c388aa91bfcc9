"""RQ entry points. Each is a plain function taking ids; the app is built once per worker process."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importing Flask here would cost every forked work horse of a plain `rq worker`
    from flask import Flask

_app: Flask | None = None


def bind_app(app: Flask) -> None:
    """Use `app` for jobs in this process (the `flask worker` command binds the app it built)."""
    global _app
    _app = app


def get_app() -> Flask:
    """The Flask app for jobs, built lazily on first use in a process that did not bind one."""
    global _app
    if _app is None:
        from app import create_app

        _app = create_app()
    return _app
