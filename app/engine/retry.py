"""Automatic retries of a failing step: the policy a step declares, and when its next try is due.

`"retry": {"max_attempts": 3, "backoff_seconds": 2, "backoff": "exponential", "on": ["HTTP_5XX", "HTTP_TIMEOUT"]}`
tries the step up to 3 times in all, waiting 2 s, then 4 s, between tries, for the errors named in `on` (every
error when `on` is left out). A code in `on` may end in `XX` for a family: `HTTP_5XX` covers `HTTP_503`.
"""
import re
from dataclasses import dataclass
from datetime import timedelta

MAX_ATTEMPTS = 10
MAX_BACKOFF_SECONDS = 86400
BACKOFFS = ("fixed", "exponential")
FIELDS = {"max_attempts", "backoff_seconds", "backoff", "on"}
_CODE = re.compile(r"^[A-Z][A-Z0-9_]{0,79}$")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    backoff_seconds: float
    backoff: str = "fixed"
    on: tuple[str, ...] = ()  # empty: every error

    def covers(self, code: str) -> bool:
        """Whether a failure with `code` is retried."""
        if not self.on:
            return True
        return any(code == pattern or (pattern.endswith("XX") and code.startswith(pattern[:-2])
                                       and code[len(pattern) - 2:].isdigit() and len(code) == len(pattern))
                   for pattern in self.on)

    def delay(self, tried: int) -> timedelta:
        """The wait after the `tried`-th try failed."""
        seconds = self.backoff_seconds * (2 ** (tried - 1) if self.backoff == "exponential" else 1)
        return timedelta(seconds=min(seconds, MAX_BACKOFF_SECONDS))

    def as_json(self) -> dict:
        return {"max_attempts": self.max_attempts, "backoff_seconds": self.backoff_seconds, "backoff": self.backoff,
                "on": list(self.on)}


def parse_retry(raw, where: str) -> tuple[RetryPolicy | None, list[tuple[str, str]]]:
    """The policy a step's `retry` field declares, and what is wrong with it (each naming the field)."""
    if raw is None:
        return None, []
    if not isinstance(raw, dict):
        return None, [(where, "must be an object such as {\"max_attempts\": 3, \"backoff_seconds\": 2}")]
    errors = []
    unknown = set(raw) - FIELDS
    if unknown:
        errors.append((where, f"unknown field(s): {', '.join(sorted(unknown))}"))
    attempts = raw.get("max_attempts")
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= MAX_ATTEMPTS:
        errors.append((f"{where}.max_attempts", f"must be a whole number from 1 to {MAX_ATTEMPTS}: the tries in all"))
    seconds = raw.get("backoff_seconds", 0)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= MAX_BACKOFF_SECONDS:
        errors.append((f"{where}.backoff_seconds", f"must be a number of seconds from 0 to {MAX_BACKOFF_SECONDS}"))
    backoff = raw.get("backoff", "fixed")
    if backoff not in BACKOFFS:
        errors.append((f"{where}.backoff", f"must be one of {', '.join(BACKOFFS)}"))
    on = raw.get("on", [])
    if not isinstance(on, list) or not all(isinstance(c, str) and _CODE.match(c) for c in on):
        errors.append((f"{where}.on", "must be a list of error codes such as \"HTTP_5XX\", \"HTTP_TIMEOUT\""))
    if errors:
        return None, errors
    return RetryPolicy(attempts, float(seconds), backoff, tuple(on)), []
