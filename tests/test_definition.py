"""Definition validation: every problem is reported with the field it is in."""
import copy

import pytest

from app.engine.definition import DefinitionError, parse_definition

GOOD = {
    "key": "invoice-sync",
    "name": "Invoice sync",
    "kind": "manual",
    "queue": "default",
    "params": [
        {"name": "since", "type": "date", "required": True, "label": "Since"},
        {"name": "limit", "type": "integer", "default": 100},
    ],
    "steps": [
        {"key": "fetch", "type": "http_request", "name": "Fetch invoices",
         "with": {"method": "GET", "url": "{{ vars.sandbox_url }}/invoices?since={{ params.since }}"}},
        {"key": "any", "type": "condition", "name": "Any invoices?",
         "with": {"expression": "steps.fetch.output.json | length > 0"}, "then": "pause", "else": "end"},
        {"key": "pause", "type": "wait", "name": "Cool down", "with": {"seconds": 5}},
        {"key": "note", "type": "log", "name": "Report",
         "with": {"level": "info", "message": "Fetched {{ steps.fetch.output.json | length }} invoices"}},
    ],
}


def errors_of(document) -> dict:
    with pytest.raises(DefinitionError) as info:
        parse_definition(document)
    return dict(info.value.errors)


def changed(**edits):
    document = copy.deepcopy(GOOD)
    for path, value in edits.items():
        target = document
        parts = path.split("__")
        for part in parts[:-1]:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(parts[-1]) if parts[-1].isdigit() else parts[-1]] = value
    return document


def test_the_issue_example_is_valid_and_links_steps_in_order():
    definition = parse_definition(GOOD)
    assert definition.first == "fetch"
    assert definition.steps["fetch"].next == "any"
    assert definition.steps["any"].then == "pause" and definition.steps["any"].otherwise == "end"
    assert definition.steps["note"].next == "end"
    assert [p.name for p in definition.params] == ["since", "limit"]


def test_unknown_step_type_names_the_field_and_the_known_types():
    errors = errors_of(changed(steps__2__type="sleep"))
    assert "unknown step type 'sleep'" in errors["steps[2].type"]
    assert "wait" in errors["steps[2].type"]


@pytest.mark.parametrize("link", ["next", "then", "else"])
def test_dangling_links_are_reported(link):
    document = copy.deepcopy(GOOD)
    document["steps"][1][link] = "nowhere"
    assert "unknown step 'nowhere'" in errors_of(document)[f"steps[1].{link}"]


def test_the_key_new_is_reserved_for_the_new_workflow_page():
    document = copy.deepcopy(GOOD)
    document["key"] = "new"
    assert "reserved" in errors_of(document)["key"]


def test_duplicate_step_keys_are_reported():
    document = copy.deepcopy(GOOD)
    document["steps"][3]["key"] = "fetch"
    assert "duplicate step key 'fetch'" in errors_of(document)["steps[3].key"]


def test_cycles_are_reported_with_their_path():
    document = copy.deepcopy(GOOD)
    document["steps"][3]["next"] = "fetch"
    assert "cycle" in errors_of(document)["steps"]
    assert "note -> fetch" in errors_of(document)["steps"]


def test_bad_parameter_definitions_are_reported():
    document = copy.deepcopy(GOOD)
    document["params"] = [
        {"name": "1bad", "type": "string"},
        {"name": "kind", "type": "colour"},
        {"name": "site", "type": "choice"},
        {"name": "limit", "type": "integer", "default": "many"},
    ]
    errors = errors_of(document)
    assert "letters" in errors["params[0].name"]
    assert "unknown type 'colour'" in errors["params[1].type"]
    assert "options" in errors["params[2].options"]
    assert "whole number" in errors["params[3].default"]


def test_step_settings_are_checked_per_type():
    document = copy.deepcopy(GOOD)
    document["steps"][0]["with"] = {"method": "FETCH"}
    document["steps"][2]["with"] = {"seconds": -1}
    document["steps"][1]["with"] = {"expression": "steps.fetch.output.json |"}
    errors = errors_of(document)
    assert errors["steps[0].with.url"] == "is required"
    assert "GET" in errors["steps[0].with.method"]
    assert "seconds" in errors["steps[2].with.seconds"]
    assert "invalid expression" in errors["steps[1].with.expression"]


def test_placeholder_syntax_errors_are_caught_at_load():
    document = copy.deepcopy(GOOD)
    document["steps"][3]["with"]["message"] = "Fetched {{ steps.fetch.output.json | length"
    assert "invalid placeholder" in errors_of(document)["steps[3].with.message"]


def test_top_level_fields_are_checked():
    errors = errors_of({"key": "Bad Key!", "name": "", "kind": "sometimes", "steps": []})
    assert "slug" in errors["key"]
    assert errors["name"] == "is required"
    assert "manual" in errors["kind"]
    assert "non-empty" in errors["steps"]


def test_too_many_nodes_is_refused():
    document = {"key": "big", "name": "Big", "steps": [{"key": f"s{i}", "type": "noop"} for i in range(201)]}
    assert "at most 200" in errors_of(document)["steps"]


def test_trigger_and_allowed_roles_are_checked():
    errors = errors_of({**GOOD, "trigger": "telepathy", "allowed_roles": ["emperor"]})
    assert "manual" in errors["trigger"]
    assert "operator" in errors["allowed_roles"]
