"""Signing in and out."""
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import login_required, login_user, logout_user

from app.extensions import db
from app.models import User

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    if target and not urlsplit(target).netloc and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("workflows.index")


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Show the sign-in form; sign the user in when the email and password match."""
    error = None
    email = ""
    if request.method == "POST":
        email = request.form.get("email", "").strip().lower()
        user = db.session.scalar(sa.select(User).where(User.email == email))
        if user is None or not user.check_password(request.form.get("password", "")):
            error = "Email or password is incorrect."
        elif not user.active:
            error = "This account is deactivated."
        else:
            login_user(user, remember=bool(request.form.get("remember")))
            return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", error=error, email=email), (401 if error else 200)


@bp.post("/logout")
@login_required
def logout():
    """Sign the user out."""
    logout_user()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))
