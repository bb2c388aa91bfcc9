"""The worker and scheduler commands (`flask worker`, `flask scheduler`), registered by the composition root
(wsgi.py), so the app never imports the jobs side."""
import logging

import click
from flask import Flask, current_app


@click.command("worker")
@click.argument("queue_names", nargs=-1)
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.option("--name", default=None, help="Worker name (unique per host).")
@click.option("--fork", is_flag=True, help="Fork a work horse per job (isolated, slower) instead of running jobs in "
                                           "this process.")
def worker_command(queue_names, burst, name, fork):
    """Run an RQ worker for QUEUE_NAMES (default: default)."""
    from app.extensions import queues
    from jobs.worker import FlowdeskWorker, ForkingFlowdeskWorker

    qs = [queues.queue(n) for n in (queue_names or ("default",))]
    worker_class = ForkingFlowdeskWorker if fork else FlowdeskWorker
    worker = worker_class(qs, connection=queues.connection, name=name, app=current_app._get_current_object())
    worker.warm_up()
    worker.work(burst=burst, logging_level="INFO")


@click.command("scheduler")
@click.option("--interval", default=1.0, type=float, help="Seconds between polls (rq-scheduler's default is 60).")
@click.option("--burst", is_flag=True, help="Move due jobs once and exit.")
def scheduler_command(interval, burst):
    """Run rq-scheduler: moves due wait-step resumes onto their queues, reconciles runs with Redis and fires
    retention once a day (FLOWDESK_RETENTION_DAYS)."""
    from app.extensions import queues
    from jobs.scheduler import FlowdeskScheduler

    logging.basicConfig(level=logging.INFO, format="%(asctime)s scheduler %(message)s")
    scheduler = FlowdeskScheduler(connection=queues.connection, interval=interval,
                                  app=current_app._get_current_object())
    scheduler.run(burst=burst)


def init_app(app: Flask) -> None:
    """Add the worker and scheduler commands to `app`'s command line."""
    for command in (worker_command, scheduler_command):
        app.cli.add_command(command)
