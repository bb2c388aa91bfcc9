"""The walker and its events, without a database: definition + context + a step's result -> next step or event."""
from datetime import datetime, timedelta

import pytest

from app.engine.definition import END, parse_definition
from app.engine.events import Cancelled, Completed, Errored, Failed, Parked, TakenOver
from app.engine.states import RunStatus, StepStatus
from app.engine.steps import StepResult
from app.engine.walker import Next, Prepared, WalkSettings, Walker, initial_context
from app.vocabulary import LogLevel

NOW = datetime(2026, 11, 20, 9, 0, 0)


def _walker(steps, params=None, **settings) -> Walker:
    definition = parse_definition({"key": "w", "name": "W", "params": [{"name": "n", "type": "integer"}],
                                   "steps": steps})
    walk_settings = WalkSettings(variables={"site": "north"}, **settings)
    context = initial_context(definition, walk_settings, run_id=7, trigger="manual", attempt=1,
                              params=params or {"n": 2}, record={"key": "INV-1"})
    return Walker(definition, context, walk_settings)


def _walk(walker: Walker):
    """Walk to the end as the executor does, returning the keys run and the event it ended with."""
    keys, key = [], walker.first
    while key != END:
        keys.append(key)
        step = walker.prepare(key)
        if isinstance(step, Failed):
            return keys, step
        result = walker.execute(step, NOW)
        if isinstance(result, Failed):
            return keys, result
        after = walker.advance(step.spec, result)
        if isinstance(after, Parked):
            return keys, after
        key = after.key
    return keys, walker.completed()


def test_a_walk_renders_placeholders_from_params_vars_record_and_earlier_steps():
    walker = _walker([
        {"key": "a", "type": "log", "with": {"message": "n={{ params.n }} at {{ vars.site }} for {{ record.key }}"}},
        {"key": "b", "type": "log", "with": {"message": "a said: {{ steps.a.output.message }}"}},
    ])
    keys, event = _walk(walker)
    assert keys == ["a", "b"]
    assert isinstance(event, Completed)
    assert event.result["steps"]["b"]["message"] == "a said: n=2 at north for INV-1"


def test_a_condition_chooses_its_branch_and_says_why():
    walker = _walker([
        {"key": "check", "type": "condition", "name": "Big?", "with": {"expression": "params.n > 1"},
         "then": "big", "else": "small"},
        {"key": "small", "type": "noop", "next": "end"},
        {"key": "big", "type": "noop"},
    ])
    step = walker.prepare("check")
    after = walker.advance(step.spec, walker.execute(step, NOW))
    assert after == Next("big", branch="then → big", note="Condition 'Big?' is true: taking then → big")
    assert _walk(_walker(walker.definition.raw["steps"], params={"n": 0}))[0] == ["check", "small"]


def test_a_wait_step_parks_the_walk_until_its_time():
    walker = _walker([{"key": "w", "type": "wait", "name": "Pause", "with": {"seconds": 90}},
                      {"key": "b", "type": "noop"}])
    keys, event = _walk(walker)
    assert keys == ["w"]
    assert event == Parked("w", "Pause", NOW + timedelta(seconds=90))
    assert event.status == RunStatus.WAITING and event.resume_at == NOW + timedelta(seconds=90)
    assert "w" not in walker.context["steps"]


def test_a_resumed_step_goes_on_to_the_next_one_or_ends_when_it_is_gone():
    walker = _walker([{"key": "w", "type": "wait", "with": {"seconds": 1}}, {"key": "b", "type": "noop"}])
    assert walker.after("w") == "b"
    assert walker.after("b") == END
    assert walker.after("renamed") == END


def test_a_placeholder_that_cannot_render_fails_the_step_before_it_runs():
    walker = _walker([{"key": "a", "type": "log", "name": "Say", "with": {"message": "{{ steps.nope.output.x }}"}}])
    event = walker.prepare("a")
    assert isinstance(event, Failed) and event.code == "TEMPLATE_ERROR" and event.step_key == "a"
    assert "nope" in event.message and event.suggested_fix


def test_a_step_failure_keeps_its_code_message_and_fix():
    walker = _walker([{"key": "f", "type": "fail", "name": "Boom",
                       "with": {"code": "BAD", "message": "row 3", "suggested_fix": "fix row 3"}}])
    keys, event = _walk(walker)
    assert event == Failed("f", "Boom", "BAD", "row 3", suggested_fix="fix row 3")
    assert event.run_values(0) == {"error_code": "BAD", "error_message": "Step 'Boom' failed: row 3", "cursor": "f"}


def test_an_unexpected_exception_fails_the_step_with_its_traceback_but_an_interrupt_propagates():
    class Stop(Exception):
        pass

    walker = _walker([{"key": "a", "type": "noop"}], interrupts=(Stop,))
    step = walker.prepare("a")

    class Broken:
        may_block = False

        def __init__(self, exc):
            self.exc = exc

        def execute(self, settings, env):
            raise self.exc

    failed = walker.execute(Prepared(step.spec, Broken(KeyError("k")), {}), NOW)
    assert failed.code == "UNEXPECTED_ERROR" and "KeyError" in failed.message and "Traceback" in failed.traceback
    with pytest.raises(Stop):
        walker.execute(Prepared(step.spec, Broken(Stop()), {}), NOW)


def test_a_bad_expression_fails_the_step_naming_the_problem():
    walker = _walker([{"key": "c", "type": "condition", "with": {"expression": "steps.nope.output.x > 1"}}])
    keys, event = _walk(walker)
    assert isinstance(event, Failed) and event.code == "EXPRESSION_ERROR"


def test_completed_steps_loaded_from_earlier_work_feed_placeholders_and_the_result():
    walker = _walker([{"key": "a", "type": "noop"}, {"key": "b", "type": "log",
                                                     "with": {"message": "{{ steps.a.output.v }}"}}])
    walker.remember("a", {"v": "from before"})
    step = walker.prepare("b")
    assert step.input == {"message": "from before"}
    result = walker.execute(step, NOW)
    assert isinstance(result, StepResult)
    walker.advance(step.spec, result)
    assert walker.completed().result == {"steps": {"a": {"v": "from before"},
                                                   "b": {"level": "info", "message": "from before"}}}


def test_each_event_says_the_run_status_the_step_status_and_its_log_lines():
    failed = Failed("s", "Send", "HTTP_500", "server error", detail="socket says no", traceback="Traceback...")
    assert (failed.status, failed.step_status) == (RunStatus.FAILED, StepStatus.FAILED)
    assert [(line.level, line.technical) for line in failed.lines(0)] == [
        (LogLevel.ERROR, False), (LogLevel.ERROR, True), (LogLevel.ERROR, True)]
    assert failed.step_values()["error_code"] == "HTTP_500" and "output" not in failed.step_values()

    completed = Completed({"steps": {}})
    assert completed.status == RunStatus.COMPLETED and completed.step_status is None
    assert completed.run_values(3) == {"progress_total": 3, "cursor": None, "result": {"steps": {}}}
    assert completed.lines(3)[0].message == "Run completed: 3 step(s) done"

    cancelled = Cancelled()
    assert (cancelled.status, cancelled.step_status) == (RunStatus.CANCELLED, StepStatus.CANCELLED)
    assert not cancelled.lines(0)[0].of_step

    errored = Errored("INVALID_DEFINITION", "bad", "The workflow definition is invalid: bad")
    assert errored.status == RunStatus.ERROR and errored.run_values(0)["error_code"] == "INVALID_DEFINITION"

    taken = TakenOver()
    assert taken.status is None and taken.lines(0) == [] and taken.resume_at is None


def test_an_approval_step_parks_with_its_question_rendered_and_a_deadline():
    from app.engine.events import AwaitingApproval

    walker = _walker([
        {"key": "a", "type": "log", "with": {"message": "fetched"}},
        {"key": "ok", "type": "approval", "name": "Sign off",
         "with": {"roles": ["manager"], "message": "Post {{ params.n }} for {{ record.key }}?", "timeout_seconds": 60}},
        {"key": "b", "type": "noop"},
    ])
    keys, event = _walk(walker)
    assert keys == ["a", "ok"]
    assert isinstance(event, AwaitingApproval) and isinstance(event, Parked)
    assert (event.status, event.step_status) == (RunStatus.WAITING_FOR_APPROVAL, StepStatus.WAITING_FOR_APPROVAL)
    assert event.message == "Post 2 for INV-1?" and event.roles == ("manager",)
    assert event.until == NOW + timedelta(seconds=60)
    assert event.resume_at is None  # a person ends this park, not rq-scheduler
    assert event.step_values() == {"approval_message": "Post 2 for INV-1?", "approval_roles": "manager",
                                   "approval_self_allowed": False, "approval_due_at": NOW + timedelta(seconds=60)}
    assert event.run_values(1) == {"cursor": "ok"}
    assert "for a decision by manager" in event.lines(1)[0].message
