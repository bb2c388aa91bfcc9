"""The RQ worker classes Flowdesk runs: in-process by default, or forking a work horse per job (`--fork`).

Forking costs more than a whole run (a fork, then a cold work horse: 15 runs/s where plain RQ's forking worker
drains 45 no-op jobs/s), so the default worker runs each job in the worker process itself. The guarantees hold without a
work horse: RQ's job time limit (SIGALRM in this process) stops a run that overruns and its failure callback ends
the run; a worker killed with -9 stops heartbeating its run and the reconciler ends it as WORKER_LOST, resumable by
a retry; cancel is a flag the run reads between steps. The forking worker isolates each job's memory and crashes,
for workflows whose steps might take a process down with them."""
from __future__ import annotations

import gc
import logging
import os
from typing import TYPE_CHECKING

from rq import SimpleWorker, Worker

import jobs
from app.extensions import db

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)
COMMAND_WAKE_SECONDS = 1.0  # the longest a stopping worker waits for its command listener


class _AppWorker:
    """What both worker classes do for `app`: bind it for the jobs of this process (and of every work horse it
    forks), and warm its caches once. RQ builds instances without an app to read the worker registry; those only
    report."""

    def __init__(self, queues, *args, app: Flask | None = None, **kwargs):
        super().__init__(queues, *args, **kwargs)
        self.flask_app = app
        if app is not None:
            jobs.bind_app(app)

    def subscribe(self) -> None:
        """Listen for RQ's commands (stop a job, shut down) as RQ does, but wake every second instead of every 60 s.
        redis-py's PubSub thread `stop()` waits for the thread, and a thread that had already seen its channel go
        away slept out its whole wait: a worker stopped (and a burst worker ended) up to a minute late. A command is
        handled as soon as it arrives either way."""
        self.log.info("Worker %s: subscribing to channel %s", self.name, self.pubsub_channel_name)
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(
            sleep_time=COMMAND_WAKE_SECONDS, daemon=True, exception_handler=self._pubsub_exception_handler
        )

    def warm_up(self) -> None:
        """Pay one-time costs in the parent so every forked work horse inherits them.

        A cold work horse imports the job modules, connects for the first time, compiles every SQL
        statement and initialises Jinja's compiler on every single job: more than the run itself.
        """
        import jobs.runs  # noqa: F401  (the job module every run job imports)
        from app.services.execution.warmup import warm_up

        if self.flask_app is not None:
            with self.flask_app.app_context():
                try:
                    warm_up(db.engine)
                except Exception:  # an unmigrated database must not stop the worker; jobs say what is wrong
                    log.warning("worker warm-up skipped; jobs will start cold", exc_info=True)
        # Keep the collector away from everything built so far: a full collection would walk it again and again
        # (and, in a forked horse, write to every object header and copy most of the parent's memory).
        gc.collect()
        gc.freeze()


class FlowdeskWorker(_AppWorker, SimpleWorker):
    """The default: each job runs in this process, one after another (see the module's docstring)."""


class ForkingFlowdeskWorker(_AppWorker, Worker):
    """A work horse forked per job, which never shares the parent's DB connections (`flask worker --fork`)."""

    def handle_work_horse_killed(self, job, retpid, ret_val, rusage):
        """A work horse died from outside (killed, out of memory): end its run instead of leaving it running."""
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)
        from app.services.execution.lost import end_lost_run
        from app.services.execution.queueing import RUN_JOBS

        if job.func_name not in RUN_JOBS or self.flask_app is None:
            return

        how = f" by signal {os.WTERMSIG(ret_val)}" if ret_val and os.WIFSIGNALED(ret_val) else ""
        message = f"The worker process running this run was killed{how}; completed steps stay completed."
        with self.flask_app.app_context():
            try:
                end_lost_run(db.session, job.args[0], "WORKER_LOST", message, noticed_by="worker")
                db.session.commit()
            finally:
                db.session.remove()

    def main_work_horse(self, job, queue):
        # The parent's pooled connections belong to the parent: the child opens its own.
        if self.flask_app is not None:
            with self.flask_app.app_context():
                db.engine.dispose(close=False)
        return super().main_work_horse(job, queue)
