"""Extension objects, created unbound and attached by create_app through init_app."""
from datetime import datetime, timedelta

import redis
import sqlalchemy as sa
from flask import Flask
from flask_htmx import HTMX
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from rq import Callback, Queue
from rq_scheduler import Scheduler
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Declarative base for every Flowdesk model."""

    metadata = sa.MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
htmx = HTMX()
# Counters live in the queues' Redis (create_app points RATELIMIT_STORAGE_URI there), shared by every process.
limiter = Limiter(key_func=get_remote_address, strategy="moving-window", key_prefix="flowdesk")


# Seconds a finished job stays in Redis. Not 0: RQ deletes a job with no result TTL at once, which reads its status
# and its executions first, three round trips more per job than letting it expire (a seventh of a short run's time
# in a worker).
RESULT_TTL = 60

class Queues:
    """Holds the Redis connection and hands out RQ queues and the rq-scheduler for this app."""

    def __init__(self) -> None:
        self._connection: redis.Redis | None = None
        self._url: str | None = None
        self._embedded_dir: str | None = None

    def init_app(self, app: Flask) -> None:
        self._connection = None
        self._url = app.config["REDIS_URL"]
        # No REDIS_URL: the private redis-server under instance/ starts on first use, not at app creation.
        self._embedded_dir = None if self._url else app.instance_path
        app.extensions["flowdesk_queues"] = self

    @property
    def storage_uri(self) -> str:
        """The Redis URL in the notation of the `limits` library (for Flask-Limiter), without connecting."""
        if self._embedded_dir is not None:
            from app.embedded import socket_url

            url = socket_url(self._embedded_dir)
        else:
            url = self._url
        return "redis+unix://" + url[len("unix://"):] if url.startswith("unix://") else url

    @property
    def connection(self) -> redis.Redis:
        if self._connection is None:
            url = self._url
            if self._embedded_dir is not None:
                from app.embedded import ensure_embedded_redis

                url, _ = ensure_embedded_redis(self._embedded_dir)
            self._connection = redis.Redis.from_url(url)
        return self._connection

    def start_embedded(self) -> None:
        """Make sure the private redis-server runs (rate limits need it before any queue is used)."""
        self.connection  # noqa: B018 (starts it on first use)

    def queue(self, name: str = "default") -> Queue:
        return Queue(name, connection=self.connection)

    def scheduler(self) -> Scheduler:
        return Scheduler(connection=self.connection)

    def enqueue(
        self, queue_name: str, func: str, *args, job_id: str | None = None, timeout: int | None = None,
        on_failure: str | None = None,
    ):
        """Put a job on a queue now, in one round trip (RQ alone sends the queue's registration and the job in two).
        A finished job expires after RESULT_TTL seconds (the database holds every outcome); a failed one is kept."""
        with self.connection.pipeline() as pipe:
            job = self.queue(queue_name).enqueue(
                func, *args, job_id=job_id, result_ttl=RESULT_TTL, failure_ttl=7 * 86400, job_timeout=timeout,
                on_failure=Callback(on_failure) if on_failure else None, pipeline=pipe,
            )
            pipe.execute()
        return job

    def enqueue_at(
        self, when: datetime, queue_name: str, func: str, *args, job_id: str | None = None,
        timeout: int | None = None, on_failure: str | None = None,
    ):
        """Hand a job to rq-scheduler, which moves it onto `queue_name` at `when` (naive UTC)."""
        # rq-scheduler keeps whole seconds and drops the fraction, which would fire up to 1 s early.
        if when.microsecond:
            when = when.replace(microsecond=0) + timedelta(seconds=1)
        return self.scheduler().enqueue_at(
            when, func, *args, queue_name=queue_name, job_id=job_id, job_result_ttl=RESULT_TTL, timeout=timeout,
            on_failure=Callback(on_failure) if on_failure else None,
        )


queues = Queues()
