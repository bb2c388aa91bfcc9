"""One ServiceError family, mapped to HTTP once: JSON for the API, a fragment for htmx, a page or a flash for people."""
import pytest
from flask import Blueprint

from app.services.errors import Conflict, Invalid, NotFound, PermissionDenied, ServiceError

ERRORS = {
    "denied": PermissionDenied("Your role cannot do that."),
    "missing": NotFound("No such run."),
    "conflict": Conflict("The run has already finished."),
    "invalid": Invalid("must be a whole number", field="limit"),
}


def test_each_error_carries_its_status_message_and_fields():
    assert [(e.status, e.message) for e in ERRORS.values()] == [
        (403, "Your role cannot do that."), (404, "No such run."), (409, "The run has already finished."),
        (422, "must be a whole number")]
    assert all(isinstance(e, ServiceError) for e in ERRORS.values())
    assert ERRORS["invalid"].fields == {"limit": "must be a whole number"}
    assert str(ERRORS["invalid"]) == "limit: must be a whole number"
    several = Invalid("Some parameters are invalid.", fields={"a": "is required", "b": "too long"})
    assert str(several) == "Some parameters are invalid." and several.fields == {"a": "is required", "b": "too long"}
    assert ERRORS["conflict"].fields == {}


@pytest.fixture(scope="module")
def probe_client(app, tmp_path_factory):
    """An app with routes that raise each error, as a page, under /api/ and for htmx."""
    from app import create_app

    probe = create_app({**{k: app.config[k] for k in ("SQLALCHEMY_DATABASE_URI", "REDIS_URL", "SECRET_KEY")},
                        "TESTING": True, "WTF_CSRF_ENABLED": False,
                        "INSTANCE_DIR": str(tmp_path_factory.mktemp("probe"))})
    bp = Blueprint("probe", __name__)

    def fail(kind: str):
        raise ERRORS[kind]

    bp.add_url_rule("/probe/<kind>", "page", fail, methods=["GET", "POST"])
    bp.add_url_rule("/api/probe/<kind>", "api", fail, methods=["GET", "POST"])
    probe.register_blueprint(bp)
    return probe.test_client()


@pytest.mark.parametrize("kind", ERRORS)
def test_the_api_answers_json_with_the_status_and_fields(probe_client, kind):
    response = probe_client.post(f"/api/probe/{kind}")
    assert response.status_code == ERRORS[kind].status
    assert response.get_json() == {"error": ERRORS[kind].message, "fields": ERRORS[kind].fields}


@pytest.mark.parametrize("kind", ERRORS)
def test_htmx_gets_the_one_line_fragment(probe_client, kind):
    response = probe_client.post(f"/probe/{kind}", headers={"HX-Request": "true", "HX-Target": "run-panel"})
    html = response.get_data(as_text=True)
    assert response.status_code == ERRORS[kind].status
    assert html.startswith('<div class="flash flash-error" role="alert">') and "<html" not in html


def test_a_page_gets_the_error_page_with_the_message(probe_client):
    response = probe_client.get("/probe/conflict")
    html = response.get_data(as_text=True)
    assert response.status_code == 409 and "<html" in html and "The run has already finished." in html
    assert probe_client.get("/probe/missing").status_code == 404
    assert probe_client.get("/probe/denied").status_code == 403


def test_a_form_post_refused_for_its_state_goes_back_with_the_message_flashed(probe_client):
    response = probe_client.post("/probe/conflict", headers={"Referer": "http://localhost/runs/5?x=1"})
    assert response.status_code == 303 and response.headers["Location"] == "/runs/5?x=1"
    with probe_client.session_transaction() as session:
        assert session["_flashes"] == [("warning", "The run has already finished.")]
    elsewhere = probe_client.post("/probe/conflict", headers={"Referer": "http://evil.example/runs/5"})
    assert elsewhere.status_code == 403  # another site's form is refused before any view runs
    denied = probe_client.post("/probe/denied", headers={"Referer": "http://localhost/runs/5"})
    assert denied.status_code == 403 and "<html" in denied.get_data(as_text=True)
