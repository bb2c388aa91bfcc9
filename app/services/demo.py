"""Demo data: sign-in accounts for each role and the demo workflows (loading them twice changes nothing)."""
import json
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.orm import Session

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


def seed(session: Session) -> Iterator[str]:
    """Create the demo users and load the demo workflows; yields one line per thing done."""
    for email, role, name in DEMO_USERS:
        if find_user(session, email) is None:
            create_user(session, email, DEMO_PASSWORD, role, name)
            yield f"user {email} ({role}) created"
    for path in demo_files():
        result = load_definition(session, json.loads(path.read_text()), summary="Demo workflow")
        if result.changed:
            yield f"workflow {result.workflow.key} version {result.version.number} published"
