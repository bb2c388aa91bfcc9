"""Signing in and out, and the account page (change password, sign out everywhere)."""
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from app.extensions import db, limiter
from app.services.errors import Invalid
from app.services.users import authenticate, change_password, end_sessions

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    if target and not urlsplit(target).netloc and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("workflows.index")


def _account_key() -> str:
    return "account:" + request.form.get("email", "").strip().lower()


def _failed(response) -> bool:
    return response.status_code == 401


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_LIMIT_ACCOUNT"], key_func=_account_key, methods=["POST"],
               deduct_when=_failed)
@limiter.limit(lambda: current_app.config["LOGIN_LIMIT_ADDRESS"], methods=["POST"], deduct_when=_failed)
def login():
    """Show the sign-in form; sign the user in when the email and password match."""
    error = None
    email = ""
    if request.method == "POST":
        email = request.form.get("email", "").strip().lower()
        user = authenticate(db.session, email, request.form.get("password", ""))
        if user is None:
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
    """Sign the user out; the session and remember-me cookies they had stop working."""
    end_sessions(current_user)
    db.session.commit()
    logout_user()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.get("/account")
@login_required
def account():
    """The signed-in user's account: who they are, a password change form and Sign out everywhere."""
    return render_template("auth/account.html", errors={})


@bp.post("/account/password")
@login_required
def password():
    """Change the password; every other session ends, this one stays signed in."""
    try:
        change_password(db.session, current_user, request.form.get("current_password", ""),
                        request.form.get("new_password", ""), request.form.get("confirm_password", ""))
    except Invalid as exc:
        db.session.rollback()
        return render_template("auth/account.html", errors={exc.field: exc.message}), 422
    db.session.commit()
    had_remember_cookie = current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token") in request.cookies
    login_user(current_user._get_current_object(), remember=had_remember_cookie)
    flash("Password changed. Other sessions are signed out.", "success")
    return redirect(url_for("auth.account"))


@bp.post("/account/sign-out-everywhere")
@login_required
def sign_out_everywhere():
    """End every session of this user, on every browser and device, including this one."""
    end_sessions(current_user)
    db.session.commit()
    logout_user()
    flash("You are signed out everywhere.", "info")
    return redirect(url_for("auth.login"))
