"""The audit log: one row per thing a person (or a process acting for nobody) did, with the fields it changed."""
from enum import Enum

from sqlalchemy.orm import Session

from app.models import AuditEvent, User
from app.timeutil import utcnow


class AuditEntity(str, Enum):
    RUN = "run"
    WORKFLOW = "workflow"


class AuditAction(str, Enum):
    CANCEL_RUN = "cancel_run"  # a pending or parked run was cancelled at once
    REQUEST_CANCEL = "request_cancel"  # a running run was asked to stop after its current step
    END_LOST_RUN = "end_lost_run"  # a run whose job died (killed, timed out, host lost) was ended as an error
    APPROVE_STEP = "approve_step"  # someone approved a run's approval step; the run resumes
    REJECT_STEP = "reject_step"  # someone rejected a run's approval step; the run ended as rejected
    APPROVAL_TIMEOUT = "approval_timeout"  # nobody decided on an approval step in time; the run ended as rejected
    RETRY_RUN = "retry_run"  # a failed run was queued again as a new attempt that reuses its completed steps
    RETRY_STEP = "retry_step"  # a failed run's failed step was queued again, in the same attempt
    REPLAY_RUN = "replay_run"  # a finished run was replayed as a new run (now, or scheduled for later)
    CREATE_WORKFLOW = "create_workflow"  # a new workflow was created as a draft, with its version 1
    SAVE_VERSION = "save_version"  # the definition was saved as a new version (the changed paths)
    PUBLISH = "publish"  # the newest saved version became the one that runs
    RESTORE = "restore"  # an earlier version was copied as a new version (and published, if the workflow was)
    ENABLE = "enable"  # the workflow accepts new runs again
    DISABLE = "disable"  # the workflow accepts no new runs; runs in progress go on
    UPDATE_SETTINGS = "update_settings"  # job settings or safety limits changed (live at once)
    UPDATE_RESTRICTIONS = "update_restrictions"  # which roles may see and run the workflow changed
    CLONE = "clone"  # the workflow was copied as a new draft (recorded on the copy, naming its source)
    ARCHIVE = "archive"  # the workflow was archived: hidden from the lists, never run again


Actor = User | str  # a person, or the name of the process that acted (reconciler, worker)


def record(session: Session, actor: Actor, entity: AuditEntity, entity_id: int, action: AuditAction,
           changes: dict) -> AuditEvent:
    """Add an audit row: `actor` did `action` to the entity, changing `changes` ({field: [before, after]})."""
    person = actor if isinstance(actor, User) else None
    event = AuditEvent(
        actor_id=person.id if person else None, actor=person.email if person else actor,
        entity_type=AuditEntity(entity).value, entity_id=entity_id, action=AuditAction(action).value,
        changes=changes, created_at=utcnow(),
    )
    session.add(event)
    return event
