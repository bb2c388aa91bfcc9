"""The RQ worker class Flowdesk runs: a forking worker whose work horses never share DB connections."""
import sqlalchemy as sa
from rq import Worker

from app.extensions import db


class FlowdeskWorker(Worker):
    """rq.Worker that warms its caches once and drops the inherited connection pool in each work horse."""

    flask_app = None

    def warm_up(self) -> None:
        """Pay one-time costs in the parent so every forked work horse inherits them.

        A cold work horse would import the job modules, configure the ORM mappers and initialise
        Jinja's compiler on every single job (about 100 ms on these machines).
        """
        import jobs.runs  # noqa: F401  (the job module every run job imports)
        from app.engine.expressions import check_expression, check_template
        from app.engine.states import RunStatus
        from app.engine.transitions import move
        from app.models import Run

        sa.orm.configure_mappers()
        check_template("{{ warm.up }}")
        check_expression("warm.up > 0")
        if self.flask_app is not None:
            with self.flask_app.app_context():
                move(db.session, 0, RunStatus.RUNNING, only_from=[RunStatus.PENDING])
                db.session.get(Run, 0)
                db.session.rollback()
                db.session.remove()

    def main_work_horse(self, job, queue):
        # The parent's pooled connections belong to the parent: the child opens its own.
        if self.flask_app is not None:
            with self.flask_app.app_context():
                db.engine.dispose(close=False)
        return super().main_work_horse(job, queue)
