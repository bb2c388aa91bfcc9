"""Flowdesk: the app factory."""
from flask import Flask

from app.config import load_config, outbound_policy, secret_key
from app.database import init_database
from app.extensions import csrf, db, htmx, limiter, login_manager, migrate, queues
from app.web import errors, inputs


def create_app(config: dict | None = None) -> Flask:
    """Build the Flask app: settings, extensions, blueprints and CLI commands."""
    settings = {**load_config(), **(config or {})}
    app = Flask(__name__, instance_path=settings["INSTANCE_DIR"])
    app.config.update(settings)
    app.config["SECRET_KEY"] = secret_key(app.config)
    app.extensions["flowdesk_outbound"] = outbound_policy(app.config)
    init_database(app)
    migrate.init_app(app, db, directory=str(_migrations_dir()), render_as_batch=True)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Sign in to continue."
    csrf.init_app(app)
    htmx.init_app(app)
    queues.init_app(app)
    app.config.setdefault("RATELIMIT_STORAGE_URI", queues.storage_uri)
    limiter.init_app(app)
    if not app.config["REDIS_URL"]:
        app.before_request(queues.start_embedded)
    inputs.init_app(app)  # before the blueprints: their <int:...> ids use its bounded converter

    from app.services import dispatch

    dispatch.install()

    from app import cli, views_support
    from app.web import protection
    from app.blueprints import api, approvals, auth, editor, logs, runs, versions, workflows

    app.register_blueprint(auth.bp)
    app.register_blueprint(workflows.bp)
    app.register_blueprint(editor.bp)
    app.register_blueprint(runs.bp)
    app.register_blueprint(logs.bp)
    app.register_blueprint(approvals.bp)
    app.register_blueprint(versions.bp)
    app.register_blueprint(api.bp)
    csrf.exempt(api.bp)
    if app.config["DEMO_MODE"]:
        from app.blueprints import sandbox

        app.register_blueprint(sandbox.bp)
        csrf.exempt(sandbox.bp)
    views_support.init_app(app)
    protection.init_app(app)
    cli.init_app(app)
    errors.init_app(app)
    return app


def _migrations_dir():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent / "migrations"
