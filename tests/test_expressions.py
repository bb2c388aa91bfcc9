"""Placeholders render in a sandbox: they see params, steps, run and vars, and nothing of the process."""
import os

import pytest

from app.engine.expressions import ExpressionError, evaluate, render_value

CONTEXT = {
    "params": {"since": "2026-01-01"},
    "steps": {"fetch": {"output": {"json": [1, 2, 3], "status": 200}}},
    "run": {"id": 7},
    "vars": {"sandbox_url": "http://sandbox"},
}


def test_placeholders_render_recursively():
    rendered = render_value(
        {"url": "{{ vars.sandbox_url }}/x?since={{ params.since }}", "items": ["{{ run.id }}", 5]}, CONTEXT
    )
    assert rendered == {"url": "http://sandbox/x?since=2026-01-01", "items": [7, 5]}


def test_a_lone_placeholder_keeps_its_type_and_mixed_text_renders_as_text():
    assert render_value("{{ steps.fetch.output.json | length }}", CONTEXT) == 3
    assert render_value("{{ steps.fetch.output.json }}", CONTEXT) == [1, 2, 3]
    assert render_value(" {{ run.id }} ", CONTEXT) == 7
    assert render_value("#{{ run.id }}", CONTEXT) == "#7"
    assert render_value("{{ run.id }}-{{ run.id }}", CONTEXT) == "7-7"


def test_conditions_evaluate_against_step_output():
    assert evaluate("steps.fetch.output.json | length > 0", CONTEXT) is True
    assert evaluate("steps.fetch.output.status == 404", CONTEXT) is False


def test_an_unknown_name_is_an_error_not_an_empty_string():
    with pytest.raises(ExpressionError, match="steps"):
        render_value("{{ steps.missing.output }}", CONTEXT)


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ run.__class__.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os.environ }}",
        "{{ config }}",
        "{{ environ }}",
    ],
)
def test_templates_cannot_reach_python_internals_or_the_environment(source, monkeypatch):
    monkeypatch.setenv("FLOWDESK_TEST_SECRET", "s3cret-value")
    try:
        result = render_value(source, CONTEXT)
    except ExpressionError:
        return
    assert "s3cret-value" not in result
    assert result.strip() in ("", "None")


def test_the_environment_is_not_in_the_context():
    assert "SECRET" not in repr(CONTEXT)
    with pytest.raises(ExpressionError):
        render_value("{{ os.environ }}", CONTEXT)
    assert os.environ  # the process environment exists; templates just cannot see it


def test_a_condition_on_a_missing_field_is_an_error_naming_it():
    with pytest.raises(ExpressionError, match="nope"):
        evaluate("steps.fetch.output.nope", CONTEXT)
