"""The editor's service: form fields into definition fragments, the working copy's problems located next to their
fields, and placeholders checked against the parameters and the steps that run earlier."""
import pytest
from werkzeug.datastructures import MultiDict

from app.engine.definition import parse_definition
from app.engine.references import steps_before, unknown_references
from app.services.errors import Invalid, NotFound
from app.services.workflows import editing


def doc(steps=None, params=None, **extra) -> dict:
    return {"key": "wf", "name": "Wf", "params": params or [], "steps": steps or [
        {"key": "fetch", "type": "http_request", "with": {"url": "https://example.com/{{ params.since }}"}},
        {"key": "any", "type": "condition", "with": {"expression": "steps.fetch.output.json | length > 0"},
         "then": "note", "else": "end"},
        {"key": "note", "type": "log", "with": {"message": "{{ steps.fetch.output.status }}"}},
    ], **extra}


def form(**fields) -> MultiDict:
    pairs = [(k, v) for k, values in fields.items() for v in (values if isinstance(values, list) else [values])]
    return MultiDict(pairs)


def test_placeholder_naming_a_missing_parameter_is_pointed_out():
    message = unknown_references("{{ params.sinse }}", {"since"}, set(), set())
    assert message == "no parameter named 'sinse' (parameters: since)"
    assert unknown_references("{{ params.since }} and {{ params['since'] }}", {"since"}, set(), set()) is None


def test_placeholder_naming_a_later_step_says_it_has_no_output_yet():
    assert "does not run before" in unknown_references("{{ steps.note.output }}", set(), {"fetch"}, {"fetch", "note"})
    assert unknown_references("{{ steps.nope.output }}", set(), set(), {"fetch"}) == "no step named 'nope'"
    assert unknown_references("{{ steps.fetch.output.json }}", set(), {"fetch"}, {"fetch"}) is None


def test_placeholder_with_an_unknown_top_name_lists_what_exists():
    message = unknown_references("{{ recrod.key }}", set(), set(), set())
    assert message.startswith("unknown name 'recrod'") and "record" in message
    assert unknown_references("{{ record.key }} {{ run.id }} {{ vars.base }}", set(), set(), set()) is None
    assert unknown_references("{% for r in steps.a.output %}{{ r.x }}{% endfor %}", set(), {"a"}, {"a"}) is None


def test_condition_expressions_are_checked_as_expressions():
    assert unknown_references("params.notify", set(), set(), set(), expression=True).startswith("no parameter")
    assert unknown_references("params.notify", {"notify"}, set(), set(), expression=True) is None


def test_steps_before_follows_branches_and_next():
    steps = doc()["steps"]
    assert steps_before(steps, "fetch") == set()
    assert steps_before(steps, "note") == {"fetch", "any"}
    jump = [{"key": "a", "type": "log", "next": "c"}, {"key": "b", "type": "log"}, {"key": "c", "type": "log"}]
    assert steps_before(jump, "c") == {"a", "b"}
    assert steps_before(jump, "b") == set()


def test_problems_name_the_section_step_and_form_field():
    document = doc()
    document["steps"][0]["with"]["url"] = ""
    document["steps"][2]["with"]["message"] = "{{ params.missing }}"
    document["steps"].append({"key": "slow", "type": "wait", "with": {"seconds": -1}, "retry": {"max_attempts": 99}})
    problems = editing.find_problems(document)
    by_field = {(p.step, p.field): p for p in problems}
    assert by_field[("fetch", "url")].message == "is required"
    assert by_field[("fetch", "url")].anchor == "step-url"
    assert by_field[("slow", "seconds")].section == "steps"
    assert by_field[("slow", "retry_max_attempts")].message.startswith("must be a whole number")
    warning = by_field[("note", "message")]
    assert warning.warning and "missing" in warning.message


def test_problems_of_parameters_and_configuration_are_located():
    document = doc(params=[{"name": "1bad", "type": "string"}], name="")
    problems = editing.find_problems(document)
    assert any(p.param == 0 and p.field == "name" and p.anchor == "param-0-name" for p in problems)
    assert any(p.section == "configuration" and p.field == "name" and p.anchor == "configuration-name"
               for p in problems)


def test_http_step_form_becomes_settings_and_back():
    fields = form(key="fetch", name="Fetch", method="post", url="https://x.test/{{ params.a }}",
                  headers="Accept: application/json\nX-Trace:  1", body_kind="json", body='{"a": [1, 2]}',
                  timeout="12.5", next="end", retry="on", retry_max_attempts="3", retry_backoff_seconds="2",
                  retry_backoff="exponential", retry_on="http_5xx, HTTP_TIMEOUT")
    step = editing.parse_step("http_request", fields)
    assert step == {"key": "fetch", "type": "http_request", "name": "Fetch", "next": "end",
                    "with": {"method": "POST", "url": "https://x.test/{{ params.a }}",
                             "headers": {"Accept": "application/json", "X-Trace": "1"}, "json": {"a": [1, 2]},
                             "timeout": 12.5, "fail_on_error": False},
                    "retry": {"max_attempts": 3, "backoff_seconds": 2, "backoff": "exponential",
                              "on": ["HTTP_5XX", "HTTP_TIMEOUT"]}}
    shown = editing.step_form_values(step)
    assert shown["headers"] == "Accept: application/json\nX-Trace: 1"
    assert shown["body_kind"] == "json" and '"a"' in shown["body"]
    assert shown["retry"] and shown["retry_on"] == "HTTP_5XX, HTTP_TIMEOUT" and shown["fail_on_error"] is False
    typed = {k: str(v) for k, v in shown.items() if not isinstance(v, (bool, list))} | {"retry": "on"}
    again = editing.parse_step("http_request", form(**typed))
    assert again["with"] == step["with"] and again["retry"] == step["retry"]


def test_fields_that_cannot_take_their_shape_are_refused_by_name():
    with pytest.raises(Invalid) as caught:
        editing.parse_step("http_request", form(key="a", url="x", headers="no colon here", body_kind="json",
                                                body="{nope", timeout="soon", fail_on_error="on"))
    assert set(caught.value.fields) == {"headers", "body", "timeout"}
    assert caught.value.fields["headers"] == "line 1 must read 'Name: value'"
    with pytest.raises(Invalid) as caught:
        editing.parse_step("wait", form(key="w", seconds="abc"))
    assert caught.value.fields == {"seconds": "must be a number of seconds"}


def test_settings_the_form_has_no_field_for_are_kept():
    old = {"key": "n", "type": "log", "with": {"message": "hi", "meta": {"batch": "{{ run.id }}"}}}
    step = editing.parse_step("log", form(key="n", level="warning", message="hello"), old)
    assert step["with"] == {"message": "hello", "level": "warning", "meta": {"batch": "{{ run.id }}"}}


def test_approval_condition_fail_and_wait_forms():
    approval = editing.parse_step("approval", form(key="ok", roles=["admin", "manager"], message="Post {{ run.id }}?",
                                                   timeout_seconds="3600", allow_self_approval="on"))
    assert approval["with"] == {"roles": ["manager", "admin"], "message": "Post {{ run.id }}?",
                                "allow_self_approval": True, "timeout_seconds": 3600}
    condition = editing.parse_step("condition", form(key="c", expression=" x > 1 ", then="a", next="ignored"))
    assert condition == {"key": "c", "type": "condition", "then": "a", "with": {"expression": "x > 1"}}
    fail = editing.parse_step("fail", form(key="f", code="DOWN", message="down", suggested_fix=""),
                              {"with": {"suggested_fix": "old"}})
    assert fail["with"] == {"code": "DOWN", "message": "down"}
    assert editing.parse_step("wait", form(key="w", seconds="90"))["with"] == {"seconds": 90}


def test_renaming_a_step_follows_every_link_to_it():
    document, key = editing.apply_step(doc(), "note", form(key="report", message="ok", level="info"))
    assert key == "report"
    assert document["steps"][1]["then"] == "report"
    assert [s["key"] for s in document["steps"]] == ["fetch", "any", "report"]


def test_a_step_key_already_taken_is_refused():
    with pytest.raises(Invalid) as caught:
        editing.apply_step(doc(), "note", form(key="fetch", message="ok"))
    assert "already has the key" in caught.value.fields["key"]
    with pytest.raises(NotFound):
        editing.apply_step(doc(), "gone", form(key="x"))


def test_add_move_and_remove_steps():
    document, key = editing.add_step(doc(), "wait")
    assert key == "wait_1" and document["steps"][-1]["with"] == {"seconds": 60}
    document = editing.move_step(document, "wait_1", "up")
    assert [s["key"] for s in document["steps"]] == ["fetch", "any", "wait_1", "note"]
    document = editing.move_step(document, "fetch", "up")  # already first: nothing moves
    assert document["steps"][0]["key"] == "fetch"
    document = editing.remove_step(document, "note")
    assert "then" not in document["steps"][1]
    with pytest.raises(Invalid):
        editing.add_step(doc(), "teleport")


def test_every_new_step_type_has_a_form_shape():
    for step_type in editing.STEP_LABELS:
        document, key = editing.add_step(doc(), step_type)
        step = document["steps"][-1]
        values = editing.step_form_values(step)
        assert values["key"] == key


def test_parameter_form_round_trip_and_type_checks():
    param = editing.parse_param(form(name="limit", type="integer", label="Limit", required="on", default="10",
                                     min="1", max="100", help="How many"))
    assert param == {"name": "limit", "type": "integer", "label": "Limit", "help": "How many", "required": True,
                     "min": 1, "max": 100, "default": 10}
    assert editing.param_form_values(param)["default"] == "10"
    choice = editing.parse_param(form(name="site", type="choice", options="north\n south \n\n", default="south"))
    assert choice["options"] == ["north", "south"] and choice["default"] == "south"
    with pytest.raises(Invalid) as caught:
        editing.parse_param(form(name="limit", type="integer", min="one"))
    assert caught.value.fields == {"min": "must be a whole number"}
    with pytest.raises(Invalid) as caught:
        editing.parse_param(form(name="limit", type="integer", max="5", default="9"))
    assert caught.value.fields == {"default": "must be at most 5"}
    flag = editing.parse_param(form(name="notify", type="boolean", default="true"))
    assert flag["default"] is True and editing.param_form_values(flag)["default"] == "true"
    data = editing.parse_param(form(name="extra", type="json", default='{"a": 1}'))
    assert data["default"] == {"a": 1}


def test_add_move_remove_parameters():
    document, index = editing.add_param(doc())
    document, index = editing.add_param(document)
    assert [p["name"] for p in document["params"]] == ["param_1", "param_2"] and index == 1
    document = editing.move_param(document, 1, "up")
    assert [p["name"] for p in document["params"]] == ["param_2", "param_1"]
    document = editing.remove_param(document, 0)
    assert [p["name"] for p in document["params"]] == ["param_1"]
    with pytest.raises(NotFound):
        editing.remove_param(document, 5)


def test_configuration_keeps_the_key_of_a_published_workflow():
    fields = form(name=" New name ", key="renamed", description="d", kind="automated", trigger="api")
    assert editing.apply_configuration(doc(), fields, key_locked=True)["key"] == "wf"
    changed = editing.apply_configuration(doc(), fields, key_locked=False)
    assert (changed["key"], changed["name"], changed["kind"], changed["trigger"]) == ("renamed", "New name",
                                                                                       "automated", "api")
    with pytest.raises(Invalid):
        editing.apply_configuration(doc(), form(name="x", kind="sometimes", trigger="api"), key_locked=False)


def test_restrictions_form():
    assert editing.parse_restrictions(form(audience="every", roles=["viewer"])) is None
    assert editing.parse_restrictions(form(audience="only", roles=["admin", "operator"])) == ["operator", "admin"]
    with pytest.raises(Invalid):
        editing.parse_restrictions(form(audience="only"))


def test_json_view_applies_only_a_valid_document_and_keeps_a_published_key():
    with pytest.raises(Invalid) as caught:
        editing.parse_document("{nope")
    assert "not valid JSON" in caught.value.fields["document"]
    with pytest.raises(Invalid):
        editing.parse_document("[1]")
    broken = doc()
    broken["steps"][0]["type"] = "teleport"
    with pytest.raises(Invalid) as caught:
        editing.apply_document(doc(), broken, key_locked=False)
    assert "steps[0].type" in caught.value.fields
    with pytest.raises(Invalid) as caught:
        editing.apply_document(doc(), doc(key="other"), key_locked=True)
    assert "key" in caught.value.fields
    assert editing.apply_document(doc(), doc(name="Renamed"), key_locked=False)["name"] == "Renamed"


def test_new_workflow_document_is_valid_and_slugged():
    assert editing.slug("  Ünïcode & Invoices: 2026!  ") == "unicode-invoices-2026"
    document = editing.new_definition(form(name="Invoice sync", description="", kind="manual", trigger="manual"))
    assert document["key"] == "invoice-sync"
    parse_definition(document)


def test_checking_one_field_as_typed_writes_nothing():
    document = doc(params=[{"name": "since", "type": "date"}])
    before = repr(document)
    message = editing.check_step_field(document, "note", form(key="note", message="{{ params.snice }}"), "message")
    assert message.startswith("no parameter named 'snice'")
    assert editing.check_step_field(document, "note", form(key="note", message="{{ params.since }}"), "message") is None
    assert repr(document) == before


def test_parameter_bounds_that_are_not_numbers_are_refused_by_the_validator():
    from app.engine.params import parse_specs

    _, errors = parse_specs([{"name": "n", "type": "integer", "min": "one", "max": 5}])
    assert errors == [("params[0].min", "must be a number")]


def test_a_problem_with_no_field_in_the_form_shows_at_its_top():
    document = doc()
    document["steps"][2]["with"]["meta"] = "not an object"
    document["steps"][0]["colour"] = "red"
    problems = {p.path: p for p in editing.find_problems(document)}
    meta = problems["steps[2].with.meta"]
    assert (meta.step, meta.field, meta.anchor) == ("note", "", "step-problems")
    assert meta.message.startswith("with.meta: must be an object")
    unknown = problems["steps[0]"]
    assert (unknown.step, unknown.field) == ("fetch", "") and "colour" in unknown.message
    cycle = editing.find_problems(doc(steps=[{"key": "a", "type": "log", "with": {"message": "m"}, "next": "a"}]))
    assert [(p.section, p.field, p.anchor) for p in cycle] == [("steps", "", "steps-problems")]


def test_checking_a_field_of_a_step_that_went_says_nothing():
    assert editing.check_step_field(doc(), "gone", form(key="gone", message="{{ params.x }}"), "message") is None
