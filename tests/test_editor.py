"""The workflow editor's pages: each section's edit round trip through the working copy, errors that keep what was
typed, saving and publishing, and what managers may and may not change."""
import re

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Workflow
from tests.conftest import csrf_token
from tests.factories import steps_workflow

HTMX = {"HX-Request": "true", "HX-Target": "editor-section"}


def definition() -> dict:
    return steps_workflow("sync", [
        {"key": "fetch", "type": "http_request", "name": "Fetch",
         "with": {"url": "https://example.com/{{ params.since }}"}},
        {"key": "note", "type": "log", "name": "Note", "with": {"message": "got {{ steps.fetch.output.status }}"}},
    ], params=[{"name": "since", "type": "date", "required": True}])


@pytest.fixture
def admin(login_as):
    return login_as("admin")


@pytest.fixture
def published(app, load_workflow):
    return load_workflow(definition())


@pytest.fixture
def draft(app, admin, client):
    """A draft created through the New workflow form; returns its key."""
    response = client.post("/workflows/new", data={"name": "Nightly export", "key": "", "description": "d",
                                                   "kind": "manual", "trigger": "manual",
                                                   "csrf_token": csrf_token(client, "/workflows/new")})
    assert response.status_code == 303, response.get_data(as_text=True)
    assert response.headers["Location"].endswith("/workflows/nightly-export/edit")
    return "nightly-export"


def working_copy(app, key: str) -> dict:
    with app.app_context():
        return db.session.scalar(sa.select(Workflow.draft_definition).where(Workflow.key == key))


def workflow_row(app, key: str) -> Workflow:
    with app.app_context():
        workflow = db.session.scalar(sa.select(Workflow).where(Workflow.key == key))
        db.session.expunge(workflow)
        return workflow


def post(client, url: str, data: dict | None = None, htmx: bool = True):
    token = csrf_token(client, "/account")
    headers = {**HTMX, "X-CSRFToken": token} if htmx else {}
    return client.post(url, data={**(data or {}), "csrf_token": token}, headers=headers)


def text(response) -> str:
    return response.get_data(as_text=True)


def test_every_section_renders_as_a_page_and_as_a_fragment(client, admin, published):
    for section in ("configuration", "restrictions", "settings", "parameters", "steps", "review", "json"):
        page = client.get(f"/workflows/sync/edit?section={section}")
        assert page.status_code == 200, section
        assert "<html" in text(page) and 'id="editor-nav"' in text(page) and 'id="editor-summary"' in text(page)
        fragment = client.get(f"/workflows/sync/edit?section={section}", headers=HTMX)
        assert fragment.status_code == 200
        assert "<html" not in text(fragment)
        assert text(fragment).lstrip().startswith('<section id="editor-section"')
        assert 'id="editor-nav" class="editor-nav" aria-label="Editor sections" hx-swap-oob="true"' in text(fragment)
    step = client.get("/workflows/sync/edit?section=steps&step=fetch")
    assert 'id="step-url"' in text(step) and "https://example.com/{{ params.since }}" in text(step)


def test_new_workflow_form_creates_a_draft_with_one_step(app, client, draft):
    workflow = workflow_row(app, draft)
    assert workflow.is_draft and workflow.name == "Nightly export"
    assert [s["key"] for s in working_copy(app, draft)["steps"]] == ["start"]
    page = client.get(f"/workflows/{draft}/edit")
    assert "Unsaved changes" not in text(page) and "v1" in text(page)


def test_new_workflow_form_keeps_what_was_typed_on_an_error(app, client, admin, published):
    response = client.post("/workflows/new", data={"name": "Sync again", "key": "sync", "description": "typed",
                                                   "kind": "manual", "trigger": "api",
                                                   "csrf_token": csrf_token(client, "/workflows/new")})
    assert response.status_code == 422
    html = text(response)
    assert "already used by another workflow" in html
    assert 'value="Sync again"' in html and ">typed</textarea>" in html
    assert re.search(r'<option value="api"\s+selected', html)


def test_configuration_round_trip_writes_the_working_copy_only(app, client, draft):
    response = post(client, f"/workflows/{draft}/edit/configuration",
                    {"name": "Nightly export v2", "key": "nightly-export-2", "description": "New words",
                     "kind": "automated", "trigger": "schedule"})
    assert response.status_code == 200
    html = text(response)
    assert "Configuration applied" in html and "Unsaved changes" in html
    document = working_copy(app, draft)
    assert (document["name"], document["key"], document["trigger"]) == ("Nightly export v2", "nightly-export-2",
                                                                         "schedule")
    assert workflow_row(app, draft).name == "Nightly export"  # the workflow's own fields change with a save
    assert response.headers["HX-Replace-Url"] == f"/workflows/{draft}/edit?section=configuration"


def test_configuration_error_keeps_the_typed_values_next_to_the_message(app, client, draft):
    response = post(client, f"/workflows/{draft}/edit/configuration",
                    {"name": "Typed name", "key": "k", "description": "", "kind": "sometimes", "trigger": "manual"})
    assert response.status_code == 422
    html = text(response)
    assert 'value="Typed name"' in html
    assert 'aria-describedby="msg-configuration-kind"' in html
    assert '<div id="msg-configuration-kind" class="field-error" aria-live="polite">must be one of' in html
    assert working_copy(app, draft)["name"] == "Nightly export"


def test_a_published_workflow_keeps_its_key(app, client, admin, published):
    page = client.get("/workflows/sync/edit")
    assert 'name="key"' not in text(page) and "stays as it is once a workflow was published" in text(page)
    post(client, "/workflows/sync/edit/configuration", {"name": "Sync", "key": "other", "kind": "manual",
                                                        "trigger": "manual"})
    assert working_copy(app, "sync")["key"] == "sync"


def test_parameters_add_edit_reorder_remove(app, client, admin, published):
    assert post(client, "/workflows/sync/edit/params").status_code == 200
    assert [p["name"] for p in working_copy(app, "sync")["params"]] == ["since", "param_2"]
    response = post(client, "/workflows/sync/edit/params/1", {"name": "limit", "type": "integer", "label": "Limit",
                                                               "default": "10", "min": "1", "max": "100"})
    assert response.status_code == 200
    assert working_copy(app, "sync")["params"][1] == {"name": "limit", "type": "integer", "label": "Limit",
                                                      "min": 1, "max": 100, "default": 10}
    post(client, "/workflows/sync/edit/params/1/move", {"direction": "up"})
    assert [p["name"] for p in working_copy(app, "sync")["params"]] == ["limit", "since"]
    post(client, "/workflows/sync/edit/params/0/remove")
    assert [p["name"] for p in working_copy(app, "sync")["params"]] == ["since"]


def test_changing_a_parameter_type_shows_that_type_s_fields_without_writing(app, client, admin, published):
    response = post(client, "/workflows/sync/edit/params/0/form", {"name": "site", "type": "choice", "label": "Site"})
    assert response.status_code == 200
    html = text(response)
    assert 'id="param-0-options"' in html and 'value="site"' in html and 'value="Site"' in html
    assert "data-editor-form data-dirty" in html  # still typed, not applied
    assert working_copy(app, "sync")["params"][0] == {"name": "since", "type": "date", "required": True}


def test_parameter_error_keeps_the_typed_value(app, client, admin, published):
    response = post(client, "/workflows/sync/edit/params/0", {"name": "since", "type": "integer", "min": "one",
                                                               "default": "5"})
    assert response.status_code == 422
    html = text(response)
    assert 'id="param-0-min" name="min" type="number" value="one"' in html
    assert '<div id="msg-param-0-min" class="field-error" aria-live="polite">must be a whole number</div>' in html
    assert working_copy(app, "sync")["params"][0]["type"] == "date"


def test_steps_add_edit_move_remove(app, client, admin, published):
    response = post(client, "/workflows/sync/edit/steps", {"type": "condition"})
    assert response.status_code == 200 and 'id="step-expression"' in text(response)
    response = post(client, "/workflows/sync/edit/steps/condition_1",
                    {"key": "any", "name": "Any?", "expression": "steps.fetch.output.json | length > 0",
                     "then": "note", "else": "end"})
    assert response.status_code == 200, text(response)
    steps = working_copy(app, "sync")["steps"]
    assert steps[2] == {"key": "any", "type": "condition", "name": "Any?", "then": "note", "else": "end",
                        "with": {"expression": "steps.fetch.output.json | length > 0"}}
    assert response.headers["HX-Replace-Url"] == "/workflows/sync/edit?section=steps&step=any"
    post(client, "/workflows/sync/edit/steps/any/move", {"direction": "up"})
    assert [s["key"] for s in working_copy(app, "sync")["steps"]] == ["fetch", "any", "note"]
    post(client, "/workflows/sync/edit/steps/note/remove")
    steps = working_copy(app, "sync")["steps"]
    assert [s["key"] for s in steps] == ["fetch", "any"] and "then" not in steps[1]


def test_step_error_keeps_the_typed_values(app, client, admin, published):
    response = post(client, "/workflows/sync/edit/steps/fetch",
                    {"key": "fetch", "name": "Fetch it", "method": "POST", "url": "https://typed.example/",
                     "headers": "no colon", "body_kind": "json", "body": "{broken"})
    assert response.status_code == 422
    html = text(response)
    assert 'value="https://typed.example/"' in html and ">{broken</textarea>" in html
    assert "line 1 must read" in html and "must be valid JSON" in html
    assert 'aria-describedby="msg-step-headers"' in html
    assert working_copy(app, "sync")["steps"][0]["name"] == "Fetch"


def test_placeholder_check_as_typed_names_the_unknown_parameter_and_writes_nothing(app, client, admin, published):
    token = csrf_token(client, "/account")
    response = client.post("/workflows/sync/edit/steps/note/check",
                           data={"key": "note", "message": "{{ params.snice }}", "csrf_token": token},
                           headers={"HX-Request": "true", "HX-Trigger-Name": "message", "X-CSRFToken": token})
    assert response.status_code == 200
    assert text(response) == "no parameter named &#39;snice&#39; (parameters: since)"
    fine = client.post("/workflows/sync/edit/steps/note/check",
                       data={"key": "note", "message": "{{ steps.fetch.output }}", "csrf_token": token},
                       headers={"HX-Request": "true", "HX-Trigger-Name": "message", "X-CSRFToken": token})
    assert text(fine) == ""
    assert working_copy(app, "sync")["steps"][1]["with"]["message"] == "got {{ steps.fetch.output.status }}"


def test_applied_step_shows_its_problems_next_to_the_fields(app, client, admin, published):
    response = post(client, "/workflows/sync/edit/steps/note", {"key": "note", "level": "info",
                                                                 "message": "{{ params.nope }}"})
    assert response.status_code == 200
    assert '<div id="msg-step-message" class="field-error" aria-live="polite">no parameter named' in text(response)
    review = client.get("/workflows/sync/edit?section=review")
    assert "/workflows/sync/edit?section=steps&amp;step=note#step-message" in text(review)


def test_json_view_applies_a_valid_document_and_keeps_a_broken_one(app, client, admin, published):
    broken = '{"key": "sync", "name": "Sync", "steps": [{"key": "a", "type": "teleport"}]'
    response = post(client, "/workflows/sync/edit/json", {"document": broken})
    assert response.status_code == 422
    assert "not valid JSON" in text(response) and "teleport" in text(response)
    invalid = '{"key": "sync", "name": "Sync", "steps": [{"key": "a", "type": "teleport"}]}'
    response = post(client, "/workflows/sync/edit/json", {"document": invalid})
    assert response.status_code == 422 and "steps[0].type" in text(response)
    valid = '{"key": "sync", "name": "Renamed", "steps": [{"key": "a", "type": "noop"}]}'
    assert post(client, "/workflows/sync/edit/json", {"document": valid}).status_code == 200
    assert working_copy(app, "sync") == {"key": "sync", "name": "Renamed", "steps": [{"key": "a", "type": "noop"}]}


def test_save_and_publish_from_review(app, client, draft):
    post(client, f"/workflows/{draft}/edit/steps", {"type": "wait"})
    review = client.get(f"/workflows/{draft}/edit?section=review")
    assert 'id="review-summary" name="summary" type="text" value="added &#39;New wait&#39;"' in text(review)
    response = post(client, f"/workflows/{draft}/edit/save", {"summary": "Add a pause"})
    assert response.status_code == 200, text(response)
    assert "Saved as v2" in text(response)
    with app.app_context():
        workflow = db.session.scalar(sa.select(Workflow).where(Workflow.key == draft))
        assert [(v.number, v.summary) for v in workflow.versions] == [(1, "Created"), (2, "Add a pause")]
    again = post(client, f"/workflows/{draft}/edit/save", {"summary": ""})
    assert again.status_code == 409 and "Nothing changed" in text(again)
    published = post(client, f"/workflows/{draft}/edit/publish")
    assert published.status_code == 200 and "Published v2" in text(published)
    header = text(published).split('id="editor-header" hx-swap-oob="true">')[1]  # the heading says so too
    assert '<span class="badge badge-published">Published v2</span>' in header.split("</h1>")[0]
    assert workflow_row(app, draft).is_published


def test_save_of_a_draft_with_a_new_key_moves_the_editor(app, client, draft):
    post(client, f"/workflows/{draft}/edit/configuration", {"name": "N", "key": "renamed", "kind": "manual",
                                                             "trigger": "manual"})
    response = post(client, f"/workflows/{draft}/edit/save", {"summary": ""})
    assert response.status_code == 200
    assert response.headers["HX-Redirect"] == "/workflows/renamed/edit?section=review"


def test_save_beyond_max_nodes_shows_the_refusal(app, client, admin, published):
    post(client, "/workflows/sync/edit/settings", {"queue": "default", "max_nodes": "2"})
    post(client, "/workflows/sync/edit/steps", {"type": "noop"})
    response = post(client, "/workflows/sync/edit/save", {"summary": "three"})
    assert response.status_code == 422
    assert "has 3 steps; at most 2 are allowed" in text(response)
    assert len(working_copy(app, "sync")["steps"]) == 3  # the working copy keeps the step; only the save was refused


def test_settings_round_trip_and_error(app, client, admin, published):
    response = post(client, "/workflows/sync/edit/settings",
                    {"queue": "site-a", "timeout_seconds": "", "max_runtime_seconds": "600", "max_actions": "50",
                     "max_nodes": "20"})
    assert response.status_code == 200
    workflow = workflow_row(app, "sync")
    assert (workflow.queue, workflow.max_runtime_seconds, workflow.max_actions, workflow.max_nodes) == (
        "site-a", 600, 50, 20)
    bad = post(client, "/workflows/sync/edit/settings", {"queue": "Bad Queue", "max_runtime_seconds": "soon",
                                                         "max_nodes": "20"})
    assert bad.status_code == 422
    html = text(bad)
    assert 'value="Bad Queue"' in html and 'value="soon"' in html
    assert '<div id="msg-settings-max_runtime_seconds" class="field-error" aria-live="polite">must be' in html
    assert workflow_row(app, "sync").queue == "site-a"


def test_restrictions_round_trip(app, client, admin, published):
    response = post(client, "/workflows/sync/edit/restrictions", {"audience": "only", "roles": ["operator", "admin"]})
    assert response.status_code == 200
    assert workflow_row(app, "sync").allowed_roles == ["operator", "admin"]
    refused = post(client, "/workflows/sync/edit/restrictions", {"audience": "only"})
    assert refused.status_code == 422 and "choose at least one role" in text(refused)
    post(client, "/workflows/sync/edit/restrictions", {"audience": "every"})
    assert workflow_row(app, "sync").allowed_roles is None


def test_manager_sees_other_sections_read_only_and_changes_settings(app, client, login_as, published):
    login_as("manager")
    page = client.get("/workflows/sync/edit?section=steps&step=fetch")
    assert page.status_code == 200
    html = text(page)
    assert 'name="url"' not in html and 'id="step-apply"' not in html
    assert "https://example.com/{{ params.since }}" in html  # shown read-only
    assert post(client, "/workflows/sync/edit/steps/fetch", {"key": "fetch", "url": "x"}).status_code == 403
    assert post(client, "/workflows/sync/edit/configuration", {"name": "x"}).status_code == 403
    assert post(client, "/workflows/sync/edit/save").status_code == 403
    response = post(client, "/workflows/sync/edit/settings", {"queue": "site-b", "max_runtime_seconds": "120",
                                                              "max_nodes": "200"})
    assert response.status_code == 200
    assert workflow_row(app, "sync").queue == "site-b"


def test_edit_action_shows_for_admins_and_managers_only(app, client, login_as, published):
    login_as("operator")
    assert "/workflows/sync/edit" not in text(client.get("/workflows/sync"))
    client.post("/logout", data={"csrf_token": csrf_token(client, "/account")})
    login_as("manager")
    # Managers land where they may change things.
    assert 'href="/workflows/sync/edit?section=settings"' in text(client.get("/workflows/sync"))


def test_every_section_and_step_of_every_demo_workflow_opens(app, client, admin, demo_workflows):
    """The demo's workflows (a half-configured draft among them) open in every section and every step form."""
    with app.app_context():
        workflows = [(w.key, [s["key"] for s in w.draft_definition.get("steps", [])])
                     for w in db.session.scalars(sa.select(Workflow))]
    assert len(workflows) >= 6
    for key, steps in workflows:
        for section in ("configuration", "restrictions", "settings", "parameters", "steps", "review", "json"):
            assert client.get(f"/workflows/{key}/edit?section={section}").status_code == 200, (key, section)
        for step in steps:
            page = client.get(f"/workflows/{key}/edit?section=steps&step={step}")
            assert page.status_code == 200 and 'id="step-apply"' in text(page), (key, step)


@pytest.mark.parametrize("odd", [
    {"steps": "not a list", "params": {"a": 1}},
    {"steps": [1, None, {"type": "log"}, {"key": "x", "type": "teleport", "with": "text", "retry": 5}],
     "params": ["p", {"type": "choice", "options": "abc"}]},
    {"name": None, "key": 5, "kind": [], "trigger": {}},
])
def test_a_working_copy_of_odd_shapes_still_opens_everywhere(app, client, admin, published, odd):
    """Whatever the working copy holds (the API and files write it too), the editor shows it and its problems."""
    with app.app_context():
        workflow = db.session.scalar(sa.select(Workflow).where(Workflow.key == "sync"))
        workflow.draft_definition = {**workflow.draft_definition, **odd}
        db.session.commit()
    for section in ("configuration", "restrictions", "settings", "parameters", "steps", "review", "json"):
        response = client.get(f"/workflows/sync/edit?section={section}")
        assert response.status_code == 200, (section, text(response)[:300])
    assert client.get("/workflows/sync/edit?section=steps&step=x").status_code == 200
    assert "problem" in text(client.get("/workflows/sync/edit?section=review"))


def test_a_change_from_an_outdated_form_is_refused_and_keeps_what_was_typed(app, client, admin, published):
    """Two tabs (or two admins): a form shown before the working copy changed does not write over the change."""
    page = text(client.get("/workflows/sync/edit?section=steps&step=note"))
    shown = re.search(r'name="revision" value="([0-9a-f]{16})"', page).group(1)
    other_tab = post(client, "/workflows/sync/edit/configuration", {"name": "Renamed elsewhere", "kind": "manual",
                                                                    "trigger": "manual", "revision": shown})
    assert other_tab.status_code == 200
    response = post(client, "/workflows/sync/edit/steps/note", {"key": "note", "level": "info",
                                                                 "message": "typed here", "revision": shown})
    assert response.status_code == 409
    html = text(response)
    assert "changed since this form was shown" in html and ">typed here</textarea>" in html
    document = working_copy(app, "sync")
    assert document["name"] == "Renamed elsewhere"
    assert document["steps"][1]["with"]["message"] == "got {{ steps.fetch.output.status }}"
    fresh = re.search(r'name="revision" value="([0-9a-f]{16})"', html).group(1)
    assert fresh != shown
    again = post(client, "/workflows/sync/edit/steps/note", {"key": "note", "level": "info", "message": "typed here",
                                                              "revision": fresh})
    assert again.status_code == 200
    assert working_copy(app, "sync")["steps"][1]["with"]["message"] == "typed here"


def test_settings_a_saved_version_carried_do_not_count_as_unsaved_changes(app, client, admin, published):
    """Versions saved before settings left the definition hold the queue inside; the working copy does not."""
    with app.app_context():
        workflow = db.session.scalar(sa.select(Workflow).where(Workflow.key == "sync"))
        workflow.published_version.definition = {**workflow.published_version.definition, "queue": "default"}
        db.session.commit()
    page = text(client.get("/workflows/sync/edit?section=review"))
    assert '<dd id="editor-unsaved">Saved</dd>' in page
    assert "The working copy is the same as the live version." in page


ODD_FORMS = [
    {},
    {"name": "", "key": "", "type": "bogus", "direction": "sideways", "_field": "nope"},
    {"name": "x" * 5000, "key": "Not A Key!", "type": "http_request", "url": "{{ params.", "method": "BREW",
     "headers": "no colon here", "body": "{not json", "seconds": "-1", "expression": "{{", "then": "nowhere",
     "else": "nowhere", "next": "nowhere", "roles": "emperor", "max_attempts": "many", "backoff_seconds": "1e999",
     "backoff": "sideways", "on": "???", "timeout_seconds": "0", "level": "loud", "code": "", "message": "{% x %}"},
    {"queue": "Bad Queue!", "timeout_seconds": "abc", "max_runtime_seconds": "-5", "max_actions": "1.5",
     "max_nodes": "99999999999999999999", "roles": ["admin", "emperor"], "every_role": "maybe"},
    {"json": "", "definition": "[1, 2", "summary": "y" * 400, "revision": "stale"},
    {"json": "{\"key\": \"sync\", \"name\": \"Sync\", \"steps\": \"no\"}", "revision": ""},
]
EDITOR_POSTS = ["configuration", "restrictions", "settings", "params", "params/0", "params/0/form", "params/0/move",
                "params/0/remove", "params/99", "params/99/move", "steps", "steps/fetch", "steps/fetch/check",
                "steps/fetch/move", "steps/nope", "steps/nope/check", "steps/nope/move", "steps/nope/remove", "json",
                "save", "publish", "steps/fetch/remove"]


@pytest.mark.parametrize("form", range(len(ODD_FORMS)))
def test_odd_input_to_every_editor_form_answers_a_4xx_or_a_page_never_a_500(client, admin, published, draft, form):
    for key in (published, draft):
        for path in EDITOR_POSTS:
            response = post(client, f"/workflows/{key}/edit/{path}", ODD_FORMS[form])
            assert response.status_code < 500, (key, path, response.status_code)
        for query in ("section=nope", "section=steps&step=nope", "section=parameters&param=99", "step=%00"):
            assert client.get(f"/workflows/{key}/edit?{query}").status_code < 500, (key, query)
    response = post(client, "/workflows/new", ODD_FORMS[form], htmx=False)
    assert response.status_code < 500


def test_odd_input_to_the_workflow_page_actions_never_answers_a_500(client, admin, published, draft):
    for key in (published, draft):
        for path in ("publish", "enable", "disable", "archive", "clone", "versions/1/restore", "versions/999/restore",
                     "versions/0/restore", "archive", "publish", "enable"):
            for form in ODD_FORMS[:4]:
                response = post(client, f"/workflows/{key}/{path}", form, htmx=False)
                assert response.status_code < 500, (key, path, response.status_code)
        for path in ("versions/1?against=nope", "versions/999", "audit?before=abc", "audit?before=-1",
                     "versions?page=x", "clone", "export"):
            assert client.get(f"/workflows/{key}/{path}").status_code < 500, (key, path)
