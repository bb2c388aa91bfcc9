"""The words Flowdesk uses for roles, workflow kinds, triggers, workflow states and log levels: one word per idea.

`str` Enums, so a member equals the string stored in the database and sent in JSON (`Role.ADMIN == "admin"`).
Run and step statuses live with their transition table in `app.engine.states`.
"""
from enum import Enum


class Role(str, Enum):
    VIEWER = "viewer"  # looks at workflows, runs and logs
    OPERATOR = "operator"  # also runs and cancels workflows
    MANAGER = "manager"  # also tunes published settings and schedules, replays runs
    ADMIN = "admin"  # everything, including drafts, publishing and users
    SUPPORT = "support"  # an operator who also sees technical log detail


class WorkflowKind(str, Enum):
    MANUAL = "manual"  # started by a person (or the API) when needed
    AUTOMATED = "automated"  # started by a schedule, a webhook or a record event


class Trigger(str, Enum):
    MANUAL = "manual"  # someone pressed Run on the workflow's page
    SCHEDULE = "schedule"  # a schedule slot came due
    API = "api"  # a caller of the JSON API with a bearer token
    WEBHOOK = "webhook"  # a signed webhook call
    RECORD = "record"  # a record event (a record was created or changed)

    @property
    def label(self) -> str:
        return "API" if self is Trigger.API else self.value.capitalize()


class WorkflowState(str, Enum):
    DRAFT = "draft"  # being edited; only admins see it
    PUBLISHED = "published"  # has a published version that others may see and run


class LogLevel(str, Enum):
    DEBUG = "debug"  # step-by-step detail
    INFO = "info"  # what happened, for a person following a run
    WARNING = "warning"  # something to look at; the run went on
    ERROR = "error"  # a step or the run failed

    @property
    def rank(self) -> int:
        """The level's order, lowest first: stored beside each log line so "warning and above" is a range."""
        return _LEVEL_ORDER.index(self)


_LEVEL_ORDER = tuple(LogLevel)

ROLES = tuple(r.value for r in Role)
KINDS = tuple(k.value for k in WorkflowKind)
TRIGGERS = tuple(t.value for t in Trigger)
LOG_LEVELS = tuple(level.value for level in LogLevel)
