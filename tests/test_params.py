"""Runtime parameters: typed values from forms and from the API, with a message per bad field."""
import pytest

from app.engine.params import ParamErrors, coerce_params, parse_specs

SPECS, _ = parse_specs(
    [
        {"name": "since", "type": "date", "required": True},
        {"name": "at", "type": "datetime"},
        {"name": "limit", "type": "integer", "default": 100, "min": 1, "max": 500},
        {"name": "ratio", "type": "number"},
        {"name": "notify", "type": "boolean"},
        {"name": "site", "type": "choice", "options": ["north", "south"]},
        {"name": "note", "type": "text"},
        {"name": "title", "type": "string"},
        {"name": "extra", "type": "json"},
    ]
)


def test_form_values_are_converted_to_their_types():
    values = coerce_params(
        SPECS,
        {"since": "2026-01-31", "at": "2026-01-31T09:30", "limit": "25", "ratio": "0.5", "notify": "on",
         "site": "north", "note": "a\nb", "title": "x", "extra": '{"a": [1, 2]}'},
        from_form=True,
    )
    assert values == {"since": "2026-01-31", "at": "2026-01-31T09:30:00", "limit": 25, "ratio": 0.5,
                      "notify": True, "site": "north", "note": "a\nb", "title": "x", "extra": {"a": [1, 2]}}


def test_an_unchecked_box_means_false_and_blank_optional_fields_take_defaults():
    values = coerce_params(SPECS, {"since": "2026-01-31", "limit": ""}, from_form=True)
    assert values["notify"] is False
    assert values["limit"] == 100
    assert values["title"] is None


def test_every_bad_field_gets_its_own_message():
    with pytest.raises(ParamErrors) as info:
        coerce_params(SPECS, {"since": "", "limit": "abc", "ratio": "x", "site": "west", "extra": "{"}, from_form=True)
    errors = info.value.errors
    assert errors["since"] == "is required"
    assert errors["limit"] == "must be a whole number"
    assert errors["ratio"] == "must be a number"
    assert "north, south" in errors["site"]
    assert "valid JSON" in errors["extra"]


def test_bounds_are_enforced():
    with pytest.raises(ParamErrors) as info:
        coerce_params(SPECS, {"since": "2026-01-01", "limit": 501})
    assert info.value.errors == {"limit": "must be at most 500"}


def test_api_values_must_have_the_right_json_type_and_name():
    with pytest.raises(ParamErrors) as info:
        coerce_params(SPECS, {"since": "2026-01-01", "limit": True, "notify": "yes", "bogus": 1})
    errors = info.value.errors
    assert errors["limit"] == "must be a whole number"
    assert errors["notify"] == "must be true or false"
    assert errors["bogus"] == "is not a parameter of this workflow"


def test_api_json_parameter_takes_any_json_value():
    values = coerce_params(SPECS, {"since": "2026-01-01", "extra": [1, {"b": None}]})
    assert values["extra"] == [1, {"b": None}]


def test_values_no_database_can_store_are_refused_by_name():
    with pytest.raises(ParamErrors) as info:
        coerce_params(SPECS, {"since": "2026-01-01", "title": "a\x00b", "note": "\ud800", "ratio": float("inf"),
                              "extra": {"rows": [float("nan")]}})
    errors = info.value.errors
    assert errors["title"] == "must not contain a NUL character"
    assert errors["note"].startswith("must not contain an unpaired surrogate")
    assert errors["ratio"] == "must be a finite number"
    assert errors["extra"] == "must be valid JSON (rows[0] is NaN, which JSON does not allow)"


def test_a_json_form_field_is_read_as_strict_json():
    with pytest.raises(ParamErrors) as info:
        coerce_params(SPECS, {"since": "2026-01-01", "extra": '{"a": [NaN]}'}, from_form=True)
    assert info.value.errors == {"extra": "must be valid JSON (a[0] is NaN, which JSON does not allow)"}
