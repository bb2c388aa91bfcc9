"""Time helpers: Flowdesk stores naive UTC datetimes everywhere."""
from datetime import datetime, timezone


def utcnow() -> datetime:
    """The current time as a naive UTC datetime (how every timestamp is stored)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)
