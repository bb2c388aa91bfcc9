"""The vocabulary: the words stored in the database and sent in JSON stay the same strings."""
from app.security import Role as SecurityRole
from app.vocabulary import KINDS, LOG_LEVELS, ROLES, TRIGGERS, LogLevel, Role, Trigger, WorkflowKind, WorkflowState


def test_members_equal_the_strings_stored_in_the_database():
    assert ROLES == ("viewer", "operator", "manager", "admin", "support")
    assert KINDS == ("manual", "automated")
    assert TRIGGERS == ("manual", "schedule", "api", "webhook", "record")
    assert [s.value for s in WorkflowState] == ["draft", "published"]
    assert LOG_LEVELS == ("debug", "info", "warning", "error")
    assert Role.ADMIN == "admin" and WorkflowKind("automated") is WorkflowKind.AUTOMATED
    assert Trigger.API == "api" and WorkflowState.DRAFT == "draft"


def test_log_levels_rank_from_debug_to_error():
    assert [level.rank for level in LogLevel] == [0, 1, 2, 3]
    assert LogLevel("warning").rank > LogLevel.INFO.rank


def test_role_is_still_importable_from_security():
    assert SecurityRole is Role
