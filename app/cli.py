"""Command-line interface: users, workflows, runs (retention) and demo data. The worker and scheduler commands
live with the jobs they run (jobs/cli.py)."""
import json
from datetime import timedelta
from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup

from app.engine.definition import DefinitionError
from app.services.errors import ServiceError
from app.extensions import db
from app.vocabulary import ROLES

users_cli = AppGroup("users", help="Manage users and API tokens.")
workflows_cli = AppGroup("workflows", help="Load workflow definitions (published, or as drafts).")
demo_cli = AppGroup("demo", help="Demo data.")
runs_cli = AppGroup("runs", help="Maintain run history.")


@users_cli.command("create")
@click.option("--email", required=True)
@click.option("--password", required=True)
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--name", default="")
def create_user_command(email, password, role, name):
    """Create a user who can sign in."""
    from app.services.users import create_user

    try:
        user = create_user(db.session, email, password, role, name)
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    click.echo(f"Created {user.role} {user.email}")


@users_cli.command("token")
@click.argument("email")
def token_command(email):
    """Print a new API token for EMAIL (shown once; only its hash is kept)."""
    from app.services.users import issue_token

    user = _user_or_fail(email)
    token = issue_token(db.session, user)
    db.session.commit()
    click.echo(token)


def _user_or_fail(email: str):
    from app.services.users import find_user

    user = find_user(db.session, email)
    if user is None:
        raise click.ClickException(f"no user with email {email}")
    return user


@users_cli.command("password")
@click.argument("email")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True, help="The new password.")
def password_command(email, password):
    """Set EMAIL's password; every session the user had ends."""
    from app.services.users import set_password

    user = _user_or_fail(email)
    try:
        set_password(db.session, user, password)
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    click.echo(f"Password of {user.email} changed; their sessions are signed out")


@users_cli.command("deactivate")
@click.argument("email")
def deactivate_command(email):
    """Deactivate EMAIL: they cannot sign in, their sessions end and their API tokens stop working."""
    from app.services.users import set_active

    user = _user_or_fail(email)
    set_active(user, False)
    db.session.commit()
    click.echo(f"Deactivated {user.email}; their sessions are signed out")


@users_cli.command("activate")
@click.argument("email")
def activate_command(email):
    """Let a deactivated EMAIL sign in again."""
    from app.services.users import set_active

    user = _user_or_fail(email)
    set_active(user, True)
    db.session.commit()
    click.echo(f"Activated {user.email}")


@users_cli.command("sign-out")
@click.argument("email")
def sign_out_command(email):
    """Sign EMAIL out everywhere: every session and remember-me cookie stops working."""
    from app.services.users import end_sessions

    user = _user_or_fail(email)
    end_sessions(user)
    db.session.commit()
    click.echo(f"Signed {user.email} out everywhere")


@workflows_cli.command("load")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--summary", default="", help="Change summary for the new version.")
@click.option("--draft", is_flag=True, help="Save as a draft version without publishing it (a new workflow stays a "
              "draft, only admins see it; an existing one keeps its live version).")
def load_command(files, summary, draft):
    """Create or update workflows from definition FILES and publish them (or, with --draft, save them unpublished)."""
    from app.services.workflows import load_definition

    for path in files:
        try:
            document = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise click.ClickException(f"{path}: not valid JSON: {exc}") from None
        try:
            result = load_definition(db.session, document, summary=summary, draft=draft)
        except DefinitionError as exc:
            db.session.rollback()
            lines = "\n".join(f"  {field}: {message}" for field, message in exc.errors)
            raise click.ClickException(f"{path} is not a valid workflow definition:\n{lines}") from None
        db.session.commit()
        if result.created:
            verb = "created"
        elif result.changed:
            verb = "updated"
        else:
            verb = "unchanged"
        where = "published version" if result.published else "draft version"
        live = result.workflow.published_version
        note = f" (live: {live.label})" if not result.published and live is not None else ""
        click.echo(f"{result.workflow.key}: {verb}, {where} {result.version.number}{note}")


@demo_cli.command("seed")
def seed_command():
    """Load the demo users and workflows (safe to run again)."""
    from app.services.demo import seed

    for line in seed(db.session):
        click.echo(line)
    db.session.commit()


@runs_cli.command("prune")
@click.option("--older-than", "days", required=True, type=click.IntRange(min=1), metavar="DAYS",
              help="Delete runs that finished more than DAYS days ago (a whole number, at least 1).")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
def prune_command(days, dry_run):
    """Delete finished runs older than DAYS days with their step runs and job log; active runs stay."""
    from app.services.retention import prune_runs

    report = prune_runs(db.session, timedelta(days=days), dry_run=dry_run)
    verb = "Would delete" if dry_run else "Deleted"
    click.echo(
        f"{verb} {_count(report.runs, 'run')}, {_count(report.step_runs, 'step run')} and "
        f"{_count(report.log_lines, 'log line')} finished before {report.cutoff:%Y-%m-%d %H:%M} UTC"
    )


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def init_app(app: Flask) -> None:
    for command in (users_cli, workflows_cli, runs_cli, demo_cli):
        app.cli.add_command(command)
