"""SQLAlchemy models, one module per aggregate."""
from app.models.audit import AuditEvent
from app.models.log import LogEntry
from app.models.run import Run, RunAttempt, StepRun
from app.models.user import ApiToken, User
from app.models.workflow import Workflow, WorkflowVersion

__all__ = ["ApiToken", "AuditEvent", "LogEntry", "Run", "RunAttempt", "StepRun", "User", "Workflow", "WorkflowVersion"]
