"""Polls that change nothing cost next to nothing: the run panel answers an empty 204 until something it shows
changes, the live log tail answers an empty 204 until a new line arrives, and a run's log opens on its newest lines
with older ones loaded on demand, upwards."""
import re
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from flask import template_rendered

from app.extensions import db
from app.models import LogEntry, Run, User, Workflow
from app.vocabulary import LogLevel
from app.models.run import StepRun
from app.timeutil import utcnow
from tests.factories import make_run, steps_workflow
from tests.test_security import REMEMBER, sign_in

PANEL = {"HX-Request": "true", "HX-Target": "run-panel"}
HX = {"HX-Request": "true"}


@pytest.fixture
def polls(load_workflow):
    load_workflow(steps_workflow("polls", [{"key": "a", "type": "noop"}, {"key": "b", "type": "noop"}]))
    return "polls"


@contextmanager
def rendered(app):
    """The names of the templates rendered inside the block."""
    names = []

    def record(sender, template, context, **extra):
        names.append(template.name)

    template_rendered.connect(record, app)
    try:
        yield names
    finally:
        template_rendered.disconnect(record, app)


@contextmanager
def statements(app):
    """The SQL statements sent to the database inside the block."""
    sent = []

    def record(conn, cursor, statement, parameters, context, executemany):
        sent.append(statement)

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def _poll_url(html: str, run_id: int) -> str:
    found = re.search(rf'hx-get="(/runs/{run_id}\?seen=[0-9a-f]+)" hx-trigger="every 1s"', html)
    assert found, html[:400]
    return found.group(1)


def _panel(client, url: str):
    return client.get(url, headers=PANEL)


def _update(app, model, where, **values):
    with app.app_context():
        db.session.execute(sa.update(model).where(where).values(**values))
        db.session.commit()


def _add_lines(app, run_id: int, count: int, warning_every: int = 0, levels: tuple[str, ...] = ()) -> list[int]:
    """Write `count` log lines straight into the database (every `warning_every`-th a warning, or cycling through
    `levels`); returns their ids."""
    rows = []
    for n in range(1, count + 1):
        level = "warning" if warning_every and n % warning_every == 0 else "info"
        if levels:
            level = levels[n % len(levels)]
        rows.append({"run_id": run_id, "level": level, "level_rank": LogLevel(level).rank, "message": f"line {n:05d}",
                     "technical": False, "created_at": utcnow()})
    with app.app_context():
        before = db.session.scalar(sa.select(sa.func.max(LogEntry.id)).where(LogEntry.run_id == run_id)) or 0
        db.session.execute(sa.insert(LogEntry), rows)
        db.session.commit()
        return list(db.session.scalars(
            sa.select(LogEntry.id).where(LogEntry.run_id == run_id, LogEntry.id > before).order_by(LogEntry.id)))


def _ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr class="[^"]*" data-id="(\d+)"', html)]


def _older_url(html: str) -> str | None:
    found = re.search(r'<tr id="log-older".*?hx-get="([^"]+)"', html, re.S)
    return found.group(1).replace("&amp;", "&") if found else None


def test_an_unchanged_run_panel_poll_answers_an_empty_204_without_rendering(app, client, login_as, polls):
    login_as("operator")
    run_id = make_run(app, polls, "running", steps=2)
    url = _poll_url(_panel(client, f"/runs/{run_id}").get_data(as_text=True), run_id)
    with rendered(app) as names:
        response = _panel(client, url)
    assert response.status_code == 204 and response.get_data() == b""
    assert names == []


def test_the_run_panel_renders_again_when_a_step_finishes_and_when_the_status_changes(app, client, login_as, polls):
    login_as("operator")
    run_id = make_run(app, polls, "running", steps=2)
    url = _poll_url(_panel(client, f"/runs/{run_id}").get_data(as_text=True), run_id)
    _update(app, StepRun, StepRun.run_id == run_id, status="completed", finished_at=utcnow())
    with rendered(app) as names:
        response = _panel(client, url)
    assert response.status_code == 200 and names == ["runs/_run.html"]
    after_step = _poll_url(response.get_data(as_text=True), run_id)
    assert after_step != url and _panel(client, after_step).status_code == 204

    _update(app, Run, Run.id == run_id, progress_done=2, status="waiting")
    response = _panel(client, after_step)
    assert response.status_code == 200 and 'id="run-status">Waiting' in response.get_data(as_text=True)


@contextmanager
def finishing_after(app, run_id: int, statement: int):
    """Inside the block, the run ends as completed (committed by another connection) right after the request's
    `statement`-th SQL statement; yields a list that holds True once it has."""
    seen, finished = [], []

    def record(conn, cursor, sql, parameters, context, executemany):
        if finished:
            return
        seen.append(sql)
        if len(seen) == statement:
            finished.append(True)
            with engine.begin() as other:
                other.execute(sa.update(Run).where(Run.id == run_id)
                              .values(status="completed", finished_at=utcnow(), progress_done=2))

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "after_cursor_execute", record)
    try:
        yield finished
    finally:
        sa.event.remove(engine, "after_cursor_execute", record)


def test_a_run_that_finishes_while_its_page_renders_is_shown_finished_by_the_next_poll(app, client, login_as, polls):
    """Whichever of the page's statements the run finishes after, the page's poll marker never describes a newer
    run than the page shows: a page that shows it running gets the finished panel on its next poll (a marker read
    after the run would answer 204 forever, and the page would say Running until reloaded)."""
    login_as("operator")
    shown_running = 0
    for statement in range(1, 50):
        run_id = make_run(app, polls, "running", steps=2)
        with finishing_after(app, run_id, statement) as finished:
            html = client.get(f"/runs/{run_id}").get_data(as_text=True)
        if not finished:
            break  # the page made fewer statements: every one has been tried
        if 'id="run-status">Completed' in html:
            continue
        shown_running += 1
        response = _panel(client, _poll_url(html, run_id))
        assert response.status_code == 200, f"finished after statement {statement}: the poll answered 204"
        assert 'id="run-status">Completed' in response.get_data(as_text=True)
    assert statement > 3 and shown_running >= 1


def test_the_finished_run_panel_renders_once_without_polling(app, client, login_as, polls):
    login_as("operator")
    run_id = make_run(app, polls, "running", steps=2)
    url = _poll_url(_panel(client, f"/runs/{run_id}").get_data(as_text=True), run_id)
    _update(app, Run, Run.id == run_id, status="completed", finished_at=utcnow())
    response = _panel(client, url)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "Completed" in html
    assert "hx-trigger" not in html.split(">", 1)[0]


def test_a_pending_flash_message_is_not_held_back_by_an_unchanged_poll(app, client, login_as, polls):
    login_as("operator")
    run_id = make_run(app, polls, "running", steps=2)
    url = _poll_url(_panel(client, f"/runs/{run_id}").get_data(as_text=True), run_id)
    with client.session_transaction() as session:
        session["_flashes"] = [("info", "Something to say.")]
    response = _panel(client, url)
    assert response.status_code == 200 and "Something to say." in response.get_data(as_text=True)
    assert _panel(client, url).status_code == 204


def test_an_unchanged_run_panel_poll_costs_one_sql_statement(app, client, login_as, polls):
    login_as("operator")
    run_id = make_run(app, polls, "running", steps=2)
    url = _poll_url(_panel(client, f"/runs/{run_id}").get_data(as_text=True), run_id)
    with statements(app) as sent:
        assert _panel(client, url).status_code == 204
    # The signed-in user with the run's marked columns, its workflow's visibility and the aggregate over its steps
    # (no ORM user, no run loaded), outside a transaction.
    assert len(sent) == 1, sent


def test_a_tail_poll_with_nothing_new_costs_one_sql_statement(app, client, login_as, polls):
    login_as("operator")
    run_id = make_run(app, polls, "running", steps=1)
    last = _add_lines(app, run_id, 3)[-1]
    with statements(app) as sent:
        assert client.get(f"/runs/{run_id}/log?after={last}", headers=HX).status_code == 204
    # The signed-in user with the run's status, its workflow's visibility and whether a newer line exists.
    assert len(sent) == 1, sent


def _poll_both(client, panel_url: str, run_id: int, last: int) -> tuple[int, int]:
    return _panel(client, panel_url).status_code, client.get(f"/runs/{run_id}/log?after={last}", headers=HX).status_code


@pytest.mark.parametrize("change", ["signed out everywhere", "deactivated", "role lowered", "workflow disabled",
                                    "workflow restricted"])
def test_an_unchanged_poll_stops_answering_204_once_the_user_may_no_longer_see_the_run(
        app, client, login_as, polls, change):
    """The quick path answers only "unchanged"; a session that ended, a deactivated user, a lost capability or a
    hidden workflow take the regular path, which refuses."""
    email = login_as("operator")
    run_id = make_run(app, polls, "running", steps=1)
    last = _add_lines(app, run_id, 2)[-1]
    url = _poll_url(_panel(client, f"/runs/{run_id}").get_data(as_text=True), run_id)
    assert _poll_both(client, url, run_id, last) == (204, 204)
    if change == "signed out everywhere":  # from another browser or the command line: a new session token
        _update(app, User, User.email == email, session_token="x" * 43)
    elif change == "deactivated":
        _update(app, User, User.email == email, active=False)
    elif change == "role lowered":
        _update(app, User, User.email == email, role="nobody")
    elif change == "workflow disabled":
        _update(app, Workflow, Workflow.key == polls, enabled=False)
    else:
        _update(app, Workflow, Workflow.key == polls, allowed_roles=["admin"])
    panel, tail = _poll_both(client, url, run_id, last)
    if change in ("signed out everywhere", "role lowered"):
        # Signed out: to the sign-in page; a role that no longer exists: refused.
        assert panel in (302, 401, 403) and tail in (302, 401, 403), (panel, tail)
    else:
        assert (panel, tail) == (404, 404) if change.startswith("workflow") else panel != 204 and tail != 204


def test_polls_go_on_when_only_a_remember_me_cookie_is_left(app, client, make_user, polls):
    sign_in(client, make_user("operator"), remember=True)
    run_id = make_run(app, polls, "running", steps=1)
    url = _poll_url(_panel(client, f"/runs/{run_id}").get_data(as_text=True), run_id)
    browser = app.test_client()  # the browser was restarted: no session cookie, the remember-me one remains
    browser.set_cookie(REMEMBER, client.get_cookie(REMEMBER).value)
    assert _panel(browser, url).status_code == 204
    assert _panel(browser, url).status_code == 204


def test_a_technical_line_wakes_the_tail_only_for_those_who_may_read_it(app, client, login_as, make_user, polls):
    login_as("operator")
    run_id = make_run(app, polls, "running", steps=1)
    last = _add_lines(app, run_id, 2)[-1]
    with app.app_context():
        db.session.execute(sa.insert(LogEntry), [{
            "run_id": run_id, "level": "debug", "level_rank": LogLevel.DEBUG.rank, "message": "GET /secret",
            "technical": True, "created_at": utcnow()}])
        db.session.commit()
    assert client.get(f"/runs/{run_id}/log?after={last}", headers=HX).status_code == 204
    support = app.test_client()
    sign_in(support, make_user("support"))
    html = support.get(f"/runs/{run_id}/log?after={last}", headers=HX).get_data(as_text=True)
    assert "GET /secret" in html


def test_polls_of_a_run_the_user_may_not_see_are_404(app, client, login_as, load_workflow, polls):
    load_workflow(steps_workflow("secret", [{"key": "a", "type": "noop"}], allowed_roles=["admin"]))
    run_id = make_run(app, "secret", "running", steps=1)
    login_as("operator")
    assert _panel(client, f"/runs/{run_id}?seen=0").status_code == 404
    assert client.get(f"/runs/{run_id}/log?after=1", headers=HX).status_code == 404
    assert client.get(f"/runs/{run_id + 1000}/log?after=1", headers=HX).status_code == 404


def test_a_live_tail_with_nothing_new_answers_an_empty_204_without_rendering(app, client, login_as, polls):
    login_as("operator")
    run_id = make_run(app, polls, "running", steps=1)
    last = _add_lines(app, run_id, 3)[-1]
    with rendered(app) as names:
        response = client.get(f"/runs/{run_id}/log?after={last}", headers=HX)
    assert response.status_code == 204 and response.get_data() == b"" and names == []


def test_a_live_tail_with_new_lines_answers_only_them_and_keeps_polling_from_the_newest(
        app, client, login_as, polls):
    login_as("operator")
    run_id = make_run(app, polls, "running", steps=1)
    last = _add_lines(app, run_id, 3)[-1]
    new = _add_lines(app, run_id, 2)
    html = client.get(f"/runs/{run_id}/log?after={last}", headers=HX).get_data(as_text=True)
    assert _ids(html) == new
    assert f'hx-get="/runs/{run_id}/log?after={new[-1]}" hx-trigger="every 1s"' in html


def test_the_tail_of_a_run_that_finished_says_end_of_log_and_stops(app, client, login_as, polls):
    login_as("operator")
    run_id = make_run(app, polls, "completed", steps=1)
    last = _add_lines(app, run_id, 3)[-1]
    response = client.get(f"/runs/{run_id}/log?after={last}", headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "End of log." in html and "hx-trigger" not in html


@pytest.mark.parametrize("status", ["running", "completed"])
def test_a_long_log_opens_on_its_newest_lines_and_loads_older_ones_upwards(app, client, login_as, polls, status):
    login_as("operator")
    run_id = make_run(app, polls, status, steps=1)
    ids = _add_lines(app, run_id, 480)  # pages of 200
    page = client.get(f"/runs/{run_id}").get_data(as_text=True)
    assert _ids(page) == ids[-200:]
    assert "line 00480" in page and "line 00280" not in page
    if status == "running":
        assert f'hx-get="/runs/{run_id}/log?after={ids[-1]}" hx-trigger="every 1s"' in page
    else:
        assert "End of log." in page
    older = _older_url(page)
    assert older == f"/runs/{run_id}/log?before={ids[-200]}"

    second = client.get(older, headers=HX).get_data(as_text=True)
    assert _ids(second) == ids[80:280] and 'id="log-tail"' not in second
    third = client.get(_older_url(second), headers=HX).get_data(as_text=True)
    assert _ids(third) == ids[:80] and _older_url(third) is None


def test_the_search_and_level_filter_apply_to_older_lines_and_the_tail(app, client, login_as, polls):
    login_as("operator")
    run_id = make_run(app, polls, "running", steps=1)
    ids = _add_lines(app, run_id, 480, warning_every=2)
    warnings = ids[1::2]
    panel = client.get(f"/runs/{run_id}/log?level=warning", headers=HX).get_data(as_text=True)
    assert _ids(panel) == warnings[-200:]
    older = _older_url(panel)
    assert older == f"/runs/{run_id}/log?before={warnings[-200]}&level=warning"
    rest = client.get(older, headers=HX).get_data(as_text=True)
    assert _ids(rest) == warnings[:40] and _older_url(rest) is None
    assert f'hx-get="/runs/{run_id}/log?after={warnings[-1]}&amp;level=warning"' in panel

    searched = client.get(f"/runs/{run_id}/log?q=line+0000", headers=HX).get_data(as_text=True)
    assert _ids(searched) == ids[:9] and _older_url(searched) is None
    new = _add_lines(app, run_id, 2)
    tail = client.get(f"/runs/{run_id}/log?after={warnings[-1]}&level=warning", headers=HX)
    assert tail.status_code == 204
    assert _ids(client.get(f"/runs/{run_id}/log?after={ids[-1]}", headers=HX).get_data(as_text=True)) == new


def test_a_level_filter_merges_the_levels_it_shows_in_line_order_across_pages(app, client, login_as, polls):
    login_as("operator")
    run_id = make_run(app, polls, "running", steps=1)
    ids = _add_lines(app, run_id, 480, levels=("info", "warning", "error", "debug"))
    shown = [i for n, i in enumerate(ids, start=1) if n % 4 in (1, 2)]  # warnings and errors, in line order
    panel = client.get(f"/runs/{run_id}/log?level=warning", headers=HX).get_data(as_text=True)
    assert _ids(panel) == shown[-200:]
    rest = client.get(_older_url(panel), headers=HX).get_data(as_text=True)
    assert _ids(rest) == shown[:40] and _older_url(rest) is None
    errors = client.get(f"/runs/{run_id}/log?level=error", headers=HX).get_data(as_text=True)
    assert _ids(errors) == [i for n, i in enumerate(ids, start=1) if n % 4 == 2]
    new = _add_lines(app, run_id, 8, levels=("info", "warning", "error", "debug"))
    tail = client.get(f"/runs/{run_id}/log?after={shown[-1]}&level=warning", headers=HX).get_data(as_text=True)
    assert _ids(tail) == [i for n, i in enumerate(new, start=1) if n % 4 in (1, 2)]
