"""WSGI entry point and composition root: `gunicorn wsgi:app`, and `flask --app wsgi ...` for every command,
the worker and the scheduler included."""
import gc

import jobs.cli
from app import create_app

app = create_app()
jobs.cli.init_app(app)
# Everything built so far (modules, the app, its routes and templates) lives as long as the process: moved out of
# the collector's reach, a full collection under load walks only what requests create.
gc.collect()
gc.freeze()
