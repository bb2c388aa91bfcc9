"""The scheduler process: rq-scheduler, plus the reconciler, run only by the scheduler holding the lock."""
import logging
import time

from rq_scheduler import Scheduler

from app.extensions import db

log = logging.getLogger(__name__)


class FlowdeskScheduler(Scheduler):
    """rq-scheduler that also reconciles runs with Redis every `reconcile_every` seconds.

    rq-scheduler calls enqueue_jobs only while it holds its lock, so with several schedulers
    (one active, the others standing by) exactly one reconciles.
    """

    flask_app = None
    reconcile_every = 30.0
    _last_reconcile = 0.0

    def enqueue_jobs(self):
        jobs = super().enqueue_jobs()
        if self.flask_app is not None and time.monotonic() - self._last_reconcile >= self.reconcile_every:
            self._last_reconcile = time.monotonic()
            from app.services.reconcile import reconcile

            with self.flask_app.app_context():
                try:
                    report = reconcile(db.session)
                    db.session.commit()
                    if report.requeued or report.rescheduled:
                        log.warning("reconciled: %s run(s) enqueued again, %s wait(s) scheduled again",
                                    report.requeued, report.rescheduled)
                except Exception:  # the next tick tries again; moving due jobs must go on
                    db.session.rollback()
                    log.exception("reconcile failed")
                finally:
                    db.session.remove()
        return jobs
