"""The RQ worker class Flowdesk runs: a forking worker whose work horses never share DB connections."""
from rq import Worker

from app.extensions import db


class FlowdeskWorker(Worker):
    """rq.Worker that drops the inherited connection pool in each forked work horse."""

    flask_app = None

    def main_work_horse(self, job, queue):
        # The parent's pooled connections belong to the parent: the child opens its own.
        if self.flask_app is not None:
            with self.flask_app.app_context():
                db.engine.dispose(close=False)
        return super().main_work_horse(job, queue)
