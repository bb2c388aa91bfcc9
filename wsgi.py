"""WSGI entry point: `gunicorn wsgi:app`."""
import gc

from app import create_app

app = create_app()
# Everything built so far (modules, the app, its routes and templates) lives as long as the process: moved out of
# the collector's reach, a full collection under load walks only what requests create.
gc.collect()
gc.freeze()
