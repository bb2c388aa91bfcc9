"""The run state machine: the transition table, and conditional UPDATEs that never move runs backwards."""
import pytest

from app.engine.states import ACTIVE, FINISHED, TRANSITIONS, RunStatus, can_move, sources_of


def test_every_status_has_a_row_in_the_transition_table():
    assert set(TRANSITIONS) == set(RunStatus)


def test_active_and_finished_partition_the_statuses():
    assert ACTIVE | FINISHED == set(RunStatus)
    assert not ACTIVE & FINISHED


@pytest.mark.parametrize("finished", [RunStatus.COMPLETED, RunStatus.CANCELLED, RunStatus.REJECTED])
def test_terminal_statuses_go_nowhere(finished):
    assert TRANSITIONS[finished] == frozenset()


def test_only_a_retry_leaves_failed_or_error():
    assert TRANSITIONS[RunStatus.FAILED] == {RunStatus.PENDING}
    assert TRANSITIONS[RunStatus.ERROR] == {RunStatus.PENDING}


def test_a_run_is_claimed_only_from_pending_or_a_parked_state():
    assert sources_of(RunStatus.RUNNING) == {RunStatus.PENDING, RunStatus.WAITING, RunStatus.WAITING_FOR_APPROVAL}
    assert not can_move(RunStatus.COMPLETED, RunStatus.RUNNING)
    assert not can_move(RunStatus.CANCELLED, RunStatus.COMPLETED)


def _pending_run(session, load_workflow):
    from app.models import Run, Workflow
    import sqlalchemy as sa

    key = load_workflow({"key": "t", "name": "T", "steps": [{"key": "a", "type": "noop"}]})
    workflow = session.scalar(sa.select(Workflow).where(Workflow.key == key))
    run = Run(workflow_id=workflow.id, version_id=workflow.published_version_id, status="pending", params={})
    session.add(run)
    session.commit()
    return run.id


def test_two_claims_of_one_run_succeed_once(session, load_workflow):
    from app.services.execution.claims import move

    run_id = _pending_run(session, load_workflow)
    assert move(session, run_id, RunStatus.RUNNING, only_from=[RunStatus.PENDING]) is True
    assert move(session, run_id, RunStatus.RUNNING, only_from=[RunStatus.PENDING]) is False


def test_a_late_completion_does_not_undo_a_cancel(session, load_workflow):
    from app.services.execution.claims import move
    from app.models import Run

    run_id = _pending_run(session, load_workflow)
    assert move(session, run_id, RunStatus.CANCELLED)
    assert move(session, run_id, RunStatus.COMPLETED) is False
    session.commit()
    assert session.get(Run, run_id).status == "cancelled"
