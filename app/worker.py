"""The RQ worker class Flowdesk runs: a forking worker whose work horses never share DB connections."""
import gc
import logging

from rq import Worker

from app.extensions import db

log = logging.getLogger(__name__)


class FlowdeskWorker(Worker):
    """rq.Worker that warms its caches once and drops the inherited connection pool in each work horse."""

    flask_app = None

    def warm_up(self) -> None:
        """Pay one-time costs in the parent so every forked work horse inherits them.

        A cold work horse imports the job modules, connects for the first time, compiles every SQL
        statement and initialises Jinja's compiler on every single job: more than the run itself.
        """
        import jobs.runs  # noqa: F401  (the job module every run job imports)
        from app.services.execution import warm_up

        if self.flask_app is not None:
            with self.flask_app.app_context():
                try:
                    warm_up(db.engine)
                except Exception:  # an unmigrated database must not stop the worker; jobs say what is wrong
                    log.warning("worker warm-up skipped; jobs will start cold", exc_info=True)
        # Keep the collector away from everything built so far: a horse that ran a full collection
        # would write to every object header and copy most of the parent's memory.
        gc.collect()
        gc.freeze()

    def main_work_horse(self, job, queue):
        # The parent's pooled connections belong to the parent: the child opens its own.
        if self.flask_app is not None:
            with self.flask_app.app_context():
                db.engine.dispose(close=False)
        return super().main_work_horse(job, queue)
