"""The scheduler process: rq-scheduler, plus the reconciler and the daily retention job, run only by the
scheduler holding the lock."""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from rq_scheduler import Scheduler

from app.extensions import db, queues
from app.timeutil import utcnow

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)


class FlowdeskScheduler(Scheduler):
    """rq-scheduler that also reconciles runs every `reconcile_every` seconds: a third of STALE_RUN_SECONDS.

    So a run whose worker and work horse died together ends as WORKER_LOST at most
    STALE_RUN_SECONDS + STALE_RUN_SECONDS / 3 + the poll interval after the death: 30 + 10 + 1 = 41 s
    with the defaults (its last heartbeat came at or before the death; it is stale 30 s later; the
    next pass, at most 10 s plus one poll later, ends it).

    rq-scheduler calls enqueue_jobs only while it holds its lock, so with several schedulers
    (one active, the others standing by) exactly one reconciles.

    With RETENTION_DAYS set it also enqueues `jobs.maintenance.prune_runs` on the default queue once
    every `retention_every` seconds (a day). A key in Redis, taken with SET NX and expiring after that
    long, says it was done: a restarted scheduler or the next one to take the lock does not fire again.
    """

    reconcile_every: float | None = None  # None: a third of the app's STALE_RUN_SECONDS
    retention_every: float = 86400.0
    retention_key = "flowdesk:retention:last"
    # A prune is batched, so one that RQ stops part-way loses nothing: the next day's job goes on from there.
    retention_timeout = 6 * 3600
    _last_reconcile = 0.0

    def __init__(self, *args, app: Flask | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.flask_app = app

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
        if self.flask_app is not None:
            try:
                self.fire_retention()
            except Exception:  # Redis trouble; the next tick tries again
                log.exception("could not enqueue the retention job")
        return jobs

    def fire_retention(self) -> bool:
        """Enqueue the retention job if RETENTION_DAYS is set and none was enqueued in the last day."""
        days = self.flask_app.config.get("RETENTION_DAYS")
        if not days:
            return False
        if not self.connection.set(self.retention_key, utcnow().isoformat(), nx=True,
                                   px=max(1, round(self.retention_every * 1000))):
            return False
        queues.enqueue("default", "jobs.maintenance.prune_runs", days, timeout=self.retention_timeout)
        log.info("retention: enqueued the deletion of finished runs older than %s days", days)
        return True
