"""Approvals: the "Waiting for me" list, its count in the navigation, and who may decide on a step (for the
run page). Deciding itself posts to runs.decide, which re-renders the run panel."""
from flask import Blueprint, g, render_template
from flask_login import current_user

from app.extensions import db
from app.queries.approvals import LIMIT, waiting_for
from app.security import Capability, requires
from app.services.runs import refusal

bp = Blueprint("approvals", __name__)


@bp.get("/approvals")
@requires(Capability.APPROVE_STEP)
def index():
    """The runs waiting for the current user's decision, oldest first, each with Approve / Reject."""
    return render_template("approvals/index.html", waiting=_waiting(), limit=LIMIT)


def _waiting():
    """The approvals waiting for the current user, read once per request (the navigation and the list share it)."""
    if "approvals_waiting" not in g:
        g.approvals_waiting = waiting_for(db.session, current_user)
    return g.approvals_waiting


def _count_label() -> str:
    """The navigation's count: "" for none, "99+" past the list's limit."""
    count = len(_waiting())
    if not count:
        return ""
    return f"{LIMIT - 1}+" if count >= LIMIT else str(count)


@bp.app_context_processor
def approval_helpers():
    return {
        "approvals_count": _count_label,
        "approval_refusal": lambda run, step: refusal(current_user, run, step),
    }
