"""The Run dialog: the form, Start execution, the run's live status in the dialog (204 while nothing changed),
the results once finished, Cancel, and Test again with the same values."""
import re

import pytest

from tests.conftest import csrf_token
from tests.factories import make_run, steps_workflow, work_once

DIALOG = {"HX-Request": "true", "HX-Target": "run-dialog"}
CONTENT = {"HX-Request": "true", "HX-Target": "dialog-content"}


@pytest.fixture
def greeter(load_workflow):
    return load_workflow(steps_workflow("greeter", [
        {"key": "hello", "type": "log", "name": "Say hello", "with": {"message": "Hello {{ params.who }}"}},
    ], params=[{"name": "who", "type": "string", "required": True, "label": "Who"},
               {"name": "times", "type": "integer", "default": 1, "min": 1, "max": 5, "label": "Times"}]))


def test_run_on_the_workflow_list_opens_the_dialog_and_works_without_javascript(client, login_as, greeter):
    login_as("operator")
    listing = client.get("/workflows").get_data(as_text=True)
    assert 'hx-get="/workflows/greeter/run-dialog" hx-target="#run-dialog"' in listing
    assert 'href="/workflows/greeter#run"' in listing  # without JavaScript: the workflow's page and its Run form
    assert '<dialog id="run-dialog"' in listing
    form = client.get("/workflows/greeter/run-dialog", headers=DIALOG).get_data(as_text=True)
    assert 'id="dialog-content"' in form and 'id="param-who"' in form and "Start execution" in form


def test_start_execution_keeps_the_dialog_and_follows_the_run_to_its_results(app, client, login_as, greeter):
    login_as("operator")
    token = csrf_token(client, "/workflows/greeter")
    bad = client.post("/workflows/greeter/runs", data={"csrf_token": token, "who": "", "times": "9"}, headers=CONTENT)
    assert bad.status_code == 422
    html = bad.get_data(as_text=True)
    assert 'id="dialog-content"' in html and "has-error" in html and 'value="9"' in html

    started = client.post("/workflows/greeter/runs", data={"csrf_token": token, "who": "Ada", "times": "2"},
                          headers=CONTENT)
    assert started.status_code == 200 and "HX-Redirect" not in started.headers
    run_id = int(re.search(r'hx-get="/runs/(\d+)/dialog" hx-trigger="load"', started.get_data(as_text=True))[1])
    live = client.get(f"/runs/{run_id}/dialog", headers=CONTENT).get_data(as_text=True)
    assert 'id="dialog-status"' in live and "Pending" in live and 'hx-trigger="every 1s"' in live
    assert 'id="dialog-cancel"' in live
    poll = re.search(r'hx-get="(/runs/\d+/dialog\?seen=[0-9a-f]+)"', live)[1]
    assert client.get(poll, headers=CONTENT).status_code == 204

    work_once(app)
    done = client.get(poll, headers=CONTENT)
    html = done.get_data(as_text=True)
    assert done.status_code == 200 and "Completed" in html and "Workflow results" in html
    assert "hx-trigger" not in html  # finished: the dialog stops polling
    again = re.search(r'hx-get="(/workflows/greeter/run-dialog\?from_run=\d+)"', html)[1]
    prefilled = client.get(again, headers=CONTENT).get_data(as_text=True)
    assert 'value="Ada"' in prefilled and 'value="2"' in prefilled


def test_cancel_from_the_dialog_shows_the_cancelled_run_in_it(app, client, login_as, greeter):
    login_as("operator")
    run_id = make_run(app, greeter, "pending")
    answer = client.post(f"/runs/{run_id}/cancel", data={"csrf_token": csrf_token(client, f"/runs/{run_id}")},
                         headers=CONTENT)
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200 and 'id="dialog-content"' in html and "Cancelled" in html
    assert "hx-trigger" not in html


def test_a_viewer_gets_no_run_dialog(client, login_as, greeter):
    login_as("viewer")
    assert 'hx-target="#run-dialog"' not in client.get("/workflows").get_data(as_text=True)
    assert client.get("/workflows/greeter/run-dialog", headers=DIALOG).status_code == 403
