"""Bad input answers 4xx with a message naming the field, never 500, and stores nothing."""
import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.web.inputs import MAX_ID
from tests.conftest import csrf_token
from tests.factories import issue_api_token, run_count, start, typed_workflow

RUNS_URL = "/api/v1/workflows/typed/runs"


@pytest.fixture
def api(app, make_user, load_workflow):
    """Post a raw body to the typed workflow's API endpoint as an operator; returns the response."""
    load_workflow(typed_workflow())
    token = issue_api_token(app, make_user("operator"))
    client = app.test_client()

    def post(body: str | bytes, content_type: str = "application/json"):
        return client.post(RUNS_URL, data=body,
                           headers={"Authorization": f"Bearer {token}", "Content-Type": content_type})

    return post


def _refused(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"] and isinstance(body["fields"], dict)
    return body


def test_a_nul_character_in_an_api_parameter_value_is_400_naming_it(app, api):
    body = _refused(api('{"params": {"title": "a\\u0000b"}}'), 400)
    assert body["fields"] == {"params.title": "contains a NUL character"}
    assert run_count(app) == 0


def test_a_nul_character_in_an_api_parameter_key_is_400_naming_it(app, api):
    body = _refused(api('{"params": {"ti\\u0000tle": "x"}}'), 400)
    assert body["fields"] == {'params["ti\\u0000tle"]': "contains a NUL character"}
    assert run_count(app) == 0


def test_a_nul_character_deep_inside_a_json_parameter_is_400_naming_its_path(app, api):
    body = _refused(api('{"params": {"extra": {"rows": [{"k\\u0000": 1}]}}}'), 400)
    assert list(body["fields"]) == ['params.extra.rows[0]["k\\u0000"]']
    assert run_count(app) == 0


@pytest.mark.parametrize("text", ['"\\ud800"', '"a\\udfffb"', '["\\ude00"]'])
def test_a_lone_surrogate_in_api_json_is_400_naming_the_field(app, api, text):
    body = _refused(api('{"params": {"extra": %s}}' % text), 400)
    assert list(body["fields"])[0].startswith("params.extra")
    assert "surrogate" in list(body["fields"].values())[0]
    assert run_count(app) == 0


def test_a_surrogate_pair_is_one_character_and_accepted(app, api):
    assert api('{"params": {"title": "\\ud83d\\ude00"}}').status_code == 202
    assert run_count(app) == 1


def test_bytes_that_are_not_utf8_are_400(app, api):
    body = _refused(api(b'{"params": {"title": "\xed\xa0\x80"}}'), 400)
    assert "UTF-8" in body["fields"]["body"]
    assert run_count(app) == 0


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "9" * 5000])
def test_numbers_json_cannot_carry_exactly_are_400_naming_the_field(app, api, number):
    body = _refused(api('{"params": {"ratio": %s}}' % number), 400)
    assert list(body["fields"]) == ["params.ratio"]
    assert run_count(app) == 0


@pytest.mark.parametrize("text", ["1e999", "-inf", "NaN"])
def test_a_number_parameter_given_as_text_that_is_not_finite_is_422(app, api, text):
    body = _refused(api('{"params": {"ratio": "%s"}}' % text), 422)
    assert body["fields"] == {"ratio": "must be a finite number"}
    assert run_count(app) == 0


def test_json_nested_a_thousand_deep_is_400(app, api):
    body = _refused(api('{"params": {"extra": %s%s}}' % ("[" * 1000, "]" * 1000)), 400)
    assert "nested more than" in body["error"]
    assert run_count(app) == 0


def test_json_nested_deeper_than_the_limit_is_400_naming_where(app, api):
    body = _refused(api('{"params": {"extra": %s%s}}' % ("[" * 70, "]" * 70)), 400)
    (field, message), = body["fields"].items()
    assert field.startswith("params.extra[0][0]") and "nested more than 64" in message
    assert run_count(app) == 0


def test_malformed_json_is_400(app, api):
    body = _refused(api("{oops"), 400)
    assert body["error"].startswith("The body is malformed: Expecting property name")
    assert body["fields"]["body"].startswith("is malformed")
    assert run_count(app) == 0


def test_a_body_field_a_run_does_not_take_is_422(app, api):
    body = _refused(api('{"params": {}, "dry_run": true}'), 422)
    assert body["fields"] == {"dry_run": "is not a field of a run request"}
    assert run_count(app) == 0


@pytest.mark.parametrize("body", ["null", "[]", '"x"', "0"])
def test_a_body_that_is_not_an_object_is_422_even_null(app, api, body):
    assert _refused(api(body), 422)["fields"] == {"body": "must be a JSON object"}
    assert run_count(app) == 0


@pytest.mark.parametrize("params", ["[]", '"x"', "null", "0"])
def test_params_that_are_not_an_object_are_422(app, api, params):
    body = _refused(api('{"params": %s}' % params), 422)
    assert list(body["fields"]) == ["params"]
    assert run_count(app) == 0


def test_a_body_over_the_size_limit_is_413_json(app, api):
    limit = app.config["MAX_CONTENT_LENGTH"]
    body = _refused(api('{"params": {"note": "%s"}}' % ("x" * limit)), 413)
    assert "1 MiB" in body["error"]
    assert run_count(app) == 0


def test_an_api_run_id_beyond_a_64_bit_id_is_404_json(app, client, make_user):
    token = issue_api_token(app, make_user("operator"))
    for run_id in (MAX_ID, MAX_ID + 1, 10**30):
        response = client.get(f"/api/v1/runs/{run_id}", headers={"Authorization": f"Bearer {token}"})
        _refused(response, 404)


def test_a_nul_character_in_an_api_workflow_key_is_404_json(app, api, make_user):
    token = issue_api_token(app, make_user("admin"))
    response = app.test_client().post("/api/v1/workflows/ty%00ped/runs", json={},
                                      headers={"Authorization": f"Bearer {token}"})
    _refused(response, 404)
    assert run_count(app) == 0


def test_unknown_api_paths_and_methods_answer_json(client):
    _refused(client.get("/api/v1/nope"), 404)
    response = client.delete("/api/v1/workflows")
    _refused(response, 405)
    assert "GET" in response.headers["Allow"]


def test_a_page_run_id_beyond_a_64_bit_id_is_404(client, login_as):
    login_as("admin")
    for path in (f"/runs/{MAX_ID}", f"/runs/{MAX_ID + 1}", f"/runs/{MAX_ID + 1}/log"):
        assert client.get(path).status_code == 404, path


@pytest.mark.parametrize("path", ["/runs?before=99999999999999999999", "/runs?before=-1", "/runs?before=abc"])
def test_a_runs_page_cursor_that_is_not_an_id_is_400_naming_it(client, login_as, path):
    login_as("viewer")
    response = client.get(path)
    assert response.status_code == 400
    assert "before" in response.get_data(as_text=True)


def test_a_log_cursor_beyond_a_64_bit_id_is_400_naming_it(app, client, login_as, load_workflow):
    load_workflow(typed_workflow())
    run_id = start(app, "typed", login_as("operator"))
    response = client.get(f"/runs/{run_id}/log?after=99999999999999999999", headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert "after" in response.get_data(as_text=True)


def test_a_nul_character_in_the_workflow_search_is_400(client, login_as):
    login_as("viewer")
    response = client.get("/workflows?q=in%00voice")
    assert response.status_code == 400
    assert "NUL" in response.get_data(as_text=True) and "<html" in response.get_data(as_text=True)


def test_a_nul_character_in_the_sign_in_email_is_400(client, make_user):
    make_user("operator")
    response = client.post("/login", data={"email": "operator@test.example\x00", "password": "x",
                                           "csrf_token": csrf_token(client)})
    assert response.status_code == 400
    assert "email" in response.get_data(as_text=True)


def test_a_nul_character_in_a_workflow_key_in_a_page_url_is_404(client, login_as):
    login_as("admin")
    assert client.get("/workflows/ty%00ped").status_code == 404


def test_a_run_form_over_the_size_limit_is_413_page(app, client, login_as, load_workflow):
    load_workflow(typed_workflow())
    login_as("operator")
    token = csrf_token(client, "/workflows/typed")
    response = client.post("/workflows/typed/runs",
                           data={"note": "x" * app.config["MAX_CONTENT_LENGTH"], "csrf_token": token})
    assert response.status_code == 413
    assert "<html" in response.get_data(as_text=True) and "at most 1 MiB" in response.get_data(as_text=True)
    assert run_count(app) == 0


@pytest.mark.parametrize(("field", "value", "message"), [
    ("note", "a\x00b", "Note must not contain a NUL character"),
    ("title", "\x00", "Title must not contain a NUL character"),
    ("ratio", "1e999", "Ratio must be a finite number"),
    ("ratio", "-inf", "Ratio must be a finite number"),
    ("extra", "NaN", "Extra must be valid JSON"),
    ("extra", '{"a": "\\u0000"}', "Extra must be valid JSON"),
    ("extra", '"\\ud800"', "Extra must be valid JSON"),
    ("extra", "[" * 5000, "Extra must be valid JSON"),
])
def test_run_form_values_that_cannot_be_stored_are_422_next_to_the_field(app, client, login_as, load_workflow,
                                                                          field, value, message):
    load_workflow(typed_workflow())
    login_as("operator")
    token = csrf_token(client, "/workflows/typed")
    response = client.post("/workflows/typed/runs", data={field: value, "csrf_token": token})
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert run_count(app) == 0


def _form_body(fields: dict[str, str]) -> bytes:
    """URL-encode fields the way a browser would, keeping lone surrogates as the bytes a client could send."""
    return "&".join(
        f"{quote(name)}={quote(value.encode('utf-8', 'surrogatepass'), safe='')}" for name, value in fields.items()
    ).encode("ascii")


FIELDS = ("title", "note", "count", "ratio", "notify", "day", "at", "site", "extra")
AWKWARD_TEXT = st.one_of(
    st.text(st.characters() | st.characters(categories=["Cs"]), max_size=40),
    st.sampled_from(["\x00", "\ud800", "NaN", "Infinity", "-1e999", "1e999", "9" * 5000, "[" * 3000, "{}", "null",
                     '{"a": "\\u0000"}', '"\\udfff"', "2026-02-30", "2026-01-31T25:00", "north", "on", "-0"]),
    st.text(max_size=1).map(lambda s: s * 20_000),
)


@pytest.fixture
def operator_client(client, login_as, load_workflow):
    """A client signed in as an operator, with the typed workflow published; shared by every example of a test."""
    load_workflow(typed_workflow())
    login_as("operator")
    return client


# The signed-in client and the database are shared by all examples of one test on purpose: runs accumulate
# and each example compares the count before and after its own request.
@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(values=st.fixed_dictionaries({}, optional={name: AWKWARD_TEXT for name in FIELDS}))
def test_the_run_form_answers_started_or_field_errors_for_any_text(app, operator_client, values):
    client = operator_client
    before = run_count(app)
    token = csrf_token(client, "/workflows/typed")
    response = client.post("/workflows/typed/runs", data=_form_body({**values, "csrf_token": token}),
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code in (302, 422), (response.status_code, response.get_data(as_text=True)[:500])
    assert run_count(app) == before + (response.status_code == 302)
    if response.status_code == 422:
        assert 'class="field-error"' in response.get_data(as_text=True)
