"""The scheduler process: rq-scheduler, plus the reconciler, run only by the scheduler holding the lock."""
import logging
import time

from rq_scheduler import Scheduler

from app.extensions import db

log = logging.getLogger(__name__)


class FlowdeskScheduler(Scheduler):
    """rq-scheduler that also reconciles runs every `reconcile_every` seconds: a third of STALE_RUN_SECONDS.

    So a run whose worker and work horse died together ends as WORKER_LOST at most
    STALE_RUN_SECONDS + STALE_RUN_SECONDS / 3 + the poll interval after the death: 30 + 10 + 1 = 41 s
    with the defaults (its last heartbeat came at or before the death; it is stale 30 s later; the
    next pass, at most 10 s plus one poll later, ends it).

    rq-scheduler calls enqueue_jobs only while it holds its lock, so with several schedulers
    (one active, the others standing by) exactly one reconciles.
    """

    flask_app = None
    reconcile_every: float | None = None  # None: a third of the app's STALE_RUN_SECONDS
    _last_reconcile = 0.0

    def _reconcile_due(self) -> bool:
        every = self.reconcile_every
        if every is None:
            every = self.flask_app.config["STALE_RUN_SECONDS"] / 3
        return time.monotonic() - self._last_reconcile >= every

    def enqueue_jobs(self):
        jobs = super().enqueue_jobs()
        if self.flask_app is not None and self._reconcile_due():
            self._last_reconcile = time.monotonic()
            from app.services.reconcile import reconcile

            with self.flask_app.app_context():
                try:
                    report = reconcile(db.session)
                    db.session.commit()
                    if report.lost:
                        log.warning("reconciled: %s run(s) whose worker was lost ended as WORKER_LOST", report.lost)
                    if report.requeued or report.rescheduled:
                        log.warning("reconciled: %s run(s) enqueued again, %s wait(s) scheduled again",
                                    report.requeued, report.rescheduled)
                except Exception:  # the next tick tries again; moving due jobs must go on
                    db.session.rollback()
                    log.exception("reconcile failed")
                finally:
                    db.session.remove()
        return jobs
