"""Demo data: sign-in accounts for each role and the demo workflows (loading them twice changes nothing): the
published ones (app/demo/*.json; those with a folder under app/demo/history/ get their earlier versions first, so
the Versions tab, its diffs and the audit log have something to show), and the drafts (app/demo/drafts/)."""
import json
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.orm import Session

import sqlalchemy as sa

from app.models import Workflow
from app.services.users import create_user, find_user
from app.services.workflows import load_definition
from app.vocabulary import Role

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"
DEMO_PASSWORD = "flowdesk-demo"
DEMO_USERS = [
    ("admin@example.com", Role.ADMIN.value, "Ada Admin"),
    ("manager@example.com", Role.MANAGER.value, "Max Manager"),
    ("operator@example.com", Role.OPERATOR.value, "Olu Operator"),
    ("viewer@example.com", Role.VIEWER.value, "Vic Viewer"),
    ("support@example.com", Role.SUPPORT.value, "Sam Support"),
]


def demo_files() -> list[Path]:
    return sorted(DEMO_DIR.glob("*.json"))


def draft_files() -> list[Path]:
    return sorted((DEMO_DIR / "drafts").glob("*.json"))


def history_files(key: str) -> list[Path]:
    """A demo workflow's earlier versions, oldest first: {"summary": ..., "definition": {...}} each."""
    return sorted((DEMO_DIR / "history" / key).glob("*.json"), key=lambda p: int(p.stem))


def seed(session: Session) -> Iterator[str]:
    """Create the demo users and load the demo workflows; yields one line per thing done."""
    for email, role, name in DEMO_USERS:
        if find_user(session, email) is None:
            create_user(session, email, DEMO_PASSWORD, role, name)
            yield f"user {email} ({role}) created"
    admin = find_user(session, DEMO_USERS[0][0])
    for path in demo_files():
        document = json.loads(path.read_text())
        history = history_files(document["key"])
        summary = "Demo workflow"
        if history and session.scalar(sa.select(Workflow.id).where(Workflow.key == document["key"])) is None:
            for earlier in history:
                step = json.loads(earlier.read_text())
                load_definition(session, step["definition"], author=admin, summary=step["summary"])
            summary = "Wait before posting; say so when there is nothing to post"
        result = load_definition(session, document, author=admin, summary=summary)
        if result.changed:
            yield f"workflow {result.workflow.key} version {result.version.number} published"
    for path in draft_files():
        result = load_definition(session, json.loads(path.read_text()), author=admin, summary="Started the setup",
                                 draft=True)
        if result.changed:
            yield f"draft {result.workflow.key} version {result.version.number} saved"
