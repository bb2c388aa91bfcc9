"""The job log as people use it: search (text, record key, metadata) with the level filter kept in the URL, CSV
exports that hold exactly what the page shows, workflow-wide log search and error export by date, technical lines
for support only, and what a failed HTTP step keeps."""
import csv
import io
import re
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import LogEntry, Run, User, Workflow
from app.services.runs import start_run
from app.timeutil import utcnow
from app.vocabulary import LogLevel
from tests.conftest import PASSWORD, csrf_token
from tests.factories import get_run, start, steps_workflow

HX = {"HX-Request": "true"}
COLUMNS = ["time", "level", "step", "record_key", "message", "metadata"]
ERROR_COLUMNS = ["time", "run_id", "run_status", "step", "error_code", "record_key", "message"]

SEARCH_WORKFLOW = steps_workflow("invoice-post", [
    {"key": "note", "type": "log", "name": "Note",
     "with": {"message": "Posting {{ record.key }} to the ledger", "meta": {"invoice_id": "{{ record.key }}",
                                                                          "amount": "{{ record.amount }}"}}},
    {"key": "customer", "type": "log", "name": "Customer",
     "with": {"level": "warning", "message": "Customer has no email address", "record_key": "CUST-7",
              "meta": {"customer": "7"}}},
    {"key": "discount", "type": "log", "name": "Discount",
     "with": {"level": "error", "message": "Ledger refused 50% discount_code, \"SPRING\"\nsecond line"}},
    {"key": "other", "type": "log", "name": "Other",
     "with": {"level": "warning", "message": "Unrelated INV-9999 mention", "meta": {"invoice_id": "INV-9999"}}},
])


def _sign_in(app, make_user, role: str):
    """A test client signed in as a new user with `role`."""
    client = app.test_client()
    email = make_user(role, f"{role}-{id(client)}@test.example")
    client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf_token(client)})
    return client


def _start_with_record(app, key: str, email: str, record: dict | None, params: dict | None = None) -> int:
    with app.app_context():
        workflow = db.session.scalar(sa.select(Workflow).where(Workflow.key == key))
        user = db.session.scalar(sa.select(User).where(User.email == email))
        run = start_run(db.session, workflow, user, params or {}, record=record, trigger="api")
        db.session.commit()
        return run.id


def _shown(client, run_id: int, **args) -> list[int]:
    """The ids of the log lines the run page's log panel shows for a filter."""
    response = client.get(f"/runs/{run_id}/log", query_string=args, headers=HX)
    assert response.status_code == 200, response.get_data(as_text=True)
    return [int(i) for i in re.findall(r'<tr class="[^"]*" data-id="(\d+)"', response.get_data(as_text=True))]


def _csv(response) -> list[list[str]]:
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == "text/csv" and response.mimetype_params.get("charset") == "utf-8"
    return list(csv.reader(io.StringIO(response.get_data().decode("utf-8"), newline="")))


def _lines(app, run_id: int) -> dict[str, int]:
    """Line ids of a run by message (first line of each message)."""
    with app.app_context():
        rows = db.session.execute(sa.select(LogEntry.id, LogEntry.message).where(LogEntry.run_id == run_id))
        return {message.split("\n")[0]: line_id for line_id, message in rows}


@pytest.fixture
def searched_run(app, make_user, load_workflow, drain):
    """A finished run of invoice-post about record INV-2291, with lines at several levels, keys and metadata."""
    load_workflow(SEARCH_WORKFLOW)
    run_id = _start_with_record(app, "invoice-post", make_user("admin", "owner@test.example"),
                                {"key": "INV-2291", "amount": 120.5})
    drain()
    assert get_run(app, run_id).status == "completed"
    return run_id


def test_search_matches_message_text_record_key_and_metadata_fields(app, make_user, searched_run):
    client = _sign_in(app, make_user, "operator")
    ids = _lines(app, searched_run)
    posting, customer = ids["Posting INV-2291 to the ledger"], ids["Customer has no email address"]
    discount, other = ids['Ledger refused 50% discount_code, "SPRING"'], ids["Unrelated INV-9999 mention"]

    assert set(_shown(client, searched_run, q="LEDGER")) == {posting, discount}  # case-insensitive text
    assert _shown(client, searched_run, q="50%") == [discount]  # % and _ are literal, not wildcards
    assert _shown(client, searched_run, q="discount_code") == [discount]
    assert _shown(client, searched_run, q="5_%") == []
    assert _shown(client, searched_run, q="invoice_id:INV-2291") == [posting]  # a metadata field
    assert _shown(client, searched_run, q="invoice_id:INV-9999") == [other]
    assert _shown(client, searched_run, q="amount:120.5") == [posting]  # a number stored in metadata
    for unlike in ("amount:NaN", "amount:Infinity", "amount:1e999", 'amount:{"a":1}', "amount:true"):
        assert _shown(client, searched_run, q=unlike) == []  # not numbers JSON can hold, and no 500
    assert _shown(client, searched_run, q="key:CUST-7") == [customer]  # the record key only
    assert _shown(client, searched_run, q="CUST-7") == [customer]  # a bare key matches the record key too
    # "INV-2291" alone finds every line whose record key is INV-2291 (the run's own), not the CUST-7 line.
    by_key = _shown(client, searched_run, q="INV-2291")
    assert set(by_key) == set(ids.values()) - {customer}
    assert _shown(client, searched_run, q='"no email address"') == [customer]  # a quoted phrase
    assert _shown(client, searched_run, q="ledger refused") == [discount]  # every term must match
    assert _shown(client, searched_run, q="nothing-like-this") == []


def test_search_combines_with_the_level_filter_and_both_stay_in_the_url(app, make_user, searched_run):
    client = _sign_in(app, make_user, "operator")
    ids = _lines(app, searched_run)
    other = ids["Unrelated INV-9999 mention"]
    assert _shown(client, searched_run, q="invoice_id:INV-9999", level="warning") == [other]
    assert _shown(client, searched_run, q="invoice_id:INV-9999", level="error") == []
    discount = ids['Ledger refused 50% discount_code, "SPRING"']
    assert _shown(client, searched_run, q="ledger", level="error") == [discount]

    # The panel tells htmx to put the run page with this filter in the address bar.
    response = client.get(f"/runs/{searched_run}/log?level=warning&q=INV-9999", headers=HX)
    assert response.headers["HX-Push-Url"] == f"/runs/{searched_run}?level=warning&q=INV-9999"
    html = response.get_data(as_text=True)
    assert f'href="/runs/{searched_run}/log.csv?level=warning&amp;q=INV-9999"' in html
    # Without htmx the log URL leads to the run page with the same filter.
    plain = client.get(f"/runs/{searched_run}/log?level=warning&q=INV-9999")
    assert plain.status_code == 302 and plain.headers["Location"] == f"/runs/{searched_run}?level=warning&q=INV-9999"
    # Opening that URL shows the filtered log, with the search box and the level select filled in.
    page = client.get(f"/runs/{searched_run}?level=warning&q=INV-9999").get_data(as_text=True)
    assert 'name="q" type="search" value="INV-9999"' in page
    assert '<option value="warning" selected>' in page
    assert re.findall(r'data-id="(\d+)"', page) == [str(other)]


def test_the_live_tail_keeps_the_filter(app, make_user, load_workflow):
    load_workflow(steps_workflow("tail", [{"key": "a", "type": "noop"}]))
    run_id = start(app, "tail", make_user("admin", "boss@test.example"))  # pending, so the log is live
    client = _sign_in(app, make_user, "operator")
    html = client.get(f"/runs/{run_id}/log?level=error&q=key:K-1", headers=HX).get_data(as_text=True)
    assert f'hx-get="/runs/{run_id}/log?after=0&amp;level=error&amp;q=key:K-1"' in html
    with app.app_context():
        db.session.execute(sa.insert(LogEntry), [
            {"run_id": run_id, "level": "error", "level_rank": 3, "message": "match", "record_key": "K-1",
             "technical": False, "created_at": utcnow()},
            {"run_id": run_id, "level": "error", "level_rank": 3, "message": "other key", "record_key": "K-2",
             "technical": False, "created_at": utcnow()},
            {"run_id": run_id, "level": "info", "level_rank": 1, "message": "low level", "record_key": "K-1",
             "technical": False, "created_at": utcnow()},
        ])
        db.session.commit()
    tail = client.get(f"/runs/{run_id}/log?after=0&level=error&q=key:K-1", headers=HX).get_data(as_text=True)
    assert "match" in tail and "other key" not in tail and "low level" not in tail


def test_a_search_too_long_is_400_naming_it(app, make_user, searched_run):
    client = _sign_in(app, make_user, "operator")
    response = client.get(f"/runs/{searched_run}/log", query_string={"q": "x" * 201}, headers=HX)
    assert response.status_code == 400 and "search" in response.get_data(as_text=True)


@pytest.mark.parametrize("args", [
    {}, {"level": "warning"}, {"level": "error"}, {"q": "ledger"}, {"q": "INV-2291"}, {"q": "key:CUST-7"},
    {"q": "invoice_id:INV-9999", "level": "warning"}, {"q": "nothing-like-this"},
])
def test_the_csv_export_holds_exactly_the_lines_the_page_shows(app, make_user, searched_run, args):
    client = _sign_in(app, make_user, "operator")
    shown = _shown(client, searched_run, **args)
    with app.app_context():
        messages = dict(db.session.execute(sa.select(LogEntry.id, LogEntry.message)
                                           .where(LogEntry.run_id == searched_run)).all())
    response = client.get(f"/runs/{searched_run}/log.csv", query_string=args)
    rows = _csv(response)
    assert rows[0] == COLUMNS
    assert [r[4] for r in rows[1:]] == [messages[i] for i in shown]
    assert response.headers["Content-Disposition"].startswith(
        f'attachment; filename="flowdesk-run-{searched_run}-log-{utcnow():%Y-%m-%d}.csv"')


def test_the_log_csv_has_iso_utc_times_steps_keys_json_metadata_and_rfc4180_quoting(app, make_user, searched_run):
    client = _sign_in(app, make_user, "operator")
    response = client.get(f"/runs/{searched_run}/log.csv")
    raw = response.get_data().decode("utf-8")
    assert raw.startswith("time,level,step,record_key,message,metadata\r\n")
    # The comma, the quotes and the newline inside a message are quoted as RFC 4180 says.
    assert '"Ledger refused 50% discount_code, ""SPRING""\nsecond line"' in raw
    rows = {r[4].split("\n")[0]: r for r in _csv(response)[1:]}
    posting = rows["Posting INV-2291 to the ledger"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", posting[0])
    assert abs(datetime.fromisoformat(posting[0].removesuffix("Z")) - utcnow()) < timedelta(minutes=5)
    assert posting[1:5] == ["info", "Note", "INV-2291", "Posting INV-2291 to the ledger"]
    assert posting[5] == '{"amount": 120.5, "invoice_id": "INV-2291"}'
    assert rows["Customer has no email address"][3] == "CUST-7"
    started = next(r for m, r in rows.items() if m.startswith("Run #"))
    assert started[2] == "" and started[5] == ""  # a run-level line has no step and no metadata


FORMULAS = ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tTAB", "\rCR"]


def test_csv_exports_neutralise_formulas_from_params_record_keys_and_messages(app, make_user, load_workflow, drain):
    load_workflow(steps_workflow("formulas", [
        {"key": "say", "type": "log", "name": "=Say", "with": {"message": "{{ params.note }}", "level": "error"}},
        {"key": "keyed", "type": "log", "name": "Keyed",
         "with": {"message": "@SUM(1,2)", "level": "error", "record_key": "-{{ params.note }}"}},
    ], params=[{"name": "note", "type": "string"}]))
    owner = make_user("admin", "owner@test.example")
    runs = [_start_with_record(app, "formulas", owner, {"key": value}, {"note": value}) for value in FORMULAS]
    drain()
    client = _sign_in(app, make_user, "operator")
    for run_id, value in zip(runs, FORMULAS):
        rows = _csv(client.get(f"/runs/{run_id}/log.csv?level=error"))[1:]
        # A record key is stored without surrounding blanks ("\tTAB" becomes "TAB", no formula left).
        key = value.strip()
        assert [(r[2], r[3], r[4]) for r in rows] == [
            ("'=Say", "'" + key if key == value else key, "'" + value),
            ("Keyed", "'-" + value, "'@SUM(1,2)"),
        ]
    errors = _csv(client.get("/workflows/formulas/errors.csv"))[1:]
    assert len(errors) == 2 * len(FORMULAS)
    for row in errors:
        assert not row[3].startswith(("=", "+", "-", "@", "\t", "\r"))
        assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row), row


def _technical_run(app, make_user, load_workflow, drain) -> int:
    load_workflow(steps_workflow("tech", [{"key": "a", "type": "noop"}]))
    run_id = start(app, "tech", make_user("admin", "boss@test.example"))
    drain()
    with app.app_context():
        db.session.add(LogEntry(run_id=run_id, level="error", level_rank=LogLevel.ERROR.rank, record_key="INV-1",
                                message="Traceback: secret internals", meta={"error_code": "BOOM"}, technical=True))
        db.session.commit()
    return run_id


def test_technical_lines_are_not_searched_or_exported_for_operators_but_are_for_support(
    app, make_user, load_workflow, drain,
):
    run_id = _technical_run(app, make_user, load_workflow, drain)
    operator, support = _sign_in(app, make_user, "operator"), _sign_in(app, make_user, "support")
    for args in ({"q": "internals"}, {"q": "key:INV-1"}, {"q": "error_code:BOOM"}, {"level": "error"}):
        assert _shown(operator, run_id, **args) == []
        assert len(_shown(support, run_id, **args)) == 1
        assert _csv(operator.get(f"/runs/{run_id}/log.csv", query_string=args))[1:] == []
        assert [r[4] for r in _csv(support.get(f"/runs/{run_id}/log.csv", query_string=args))[1:]] == [
            "Traceback: secret internals"]
    assert "secret internals" not in operator.get("/workflows/tech/logs?q=internals").get_data(as_text=True)
    assert "secret internals" in support.get("/workflows/tech/logs?q=internals").get_data(as_text=True)
    assert "secret internals" not in operator.get("/workflows/tech/errors.csv").get_data(as_text=True)
    assert "secret internals" in support.get("/workflows/tech/errors.csv").get_data(as_text=True)


@pytest.mark.parametrize("role, allowed", [
    ("viewer", False), ("operator", True), ("manager", True), ("admin", True), ("support", True),
])
def test_exports_need_export_data_and_their_buttons_are_hidden_without_it(
    app, make_user, searched_run, role, allowed,
):
    client = _sign_in(app, make_user, role)
    assert client.get(f"/runs/{searched_run}/log.csv").status_code == (200 if allowed else 403)
    assert client.get("/workflows/invoice-post/errors.csv").status_code == (200 if allowed else 403)
    run_page = client.get(f"/runs/{searched_run}").get_data(as_text=True)
    logs_page = client.get("/workflows/invoice-post/logs").get_data(as_text=True)
    assert ("Export CSV" in run_page) is allowed
    assert ("Export error logs" in logs_page) is allowed
    assert "Find logs containing a key" in logs_page


def test_workflow_log_search_finds_lines_across_runs_newest_first_linking_to_each_run(
    app, make_user, load_workflow, searched_run, drain,
):
    owner = "owner@test.example"
    second = _start_with_record(app, "invoice-post", owner, {"key": "INV-2291", "amount": 3})
    third = _start_with_record(app, "invoice-post", owner, {"key": "INV-5000", "amount": 3})
    load_workflow(steps_workflow("elsewhere", [{"key": "a", "type": "log", "with": {"message": "INV-2291 elsewhere"}}]))
    foreign = _start_with_record(app, "elsewhere", owner, {"key": "INV-2291"})
    drain()
    client = _sign_in(app, make_user, "viewer")
    html = client.get("/workflows/invoice-post/logs?q=INV-2291").get_data(as_text=True)
    found = [int(i) for i in re.findall(r'data-id="(\d+)"', html)]
    assert found == sorted(found, reverse=True) and found
    runs = re.findall(r'<a href="/runs/(\d+)">Run #\d+</a>', html)
    assert set(map(int, runs)) == {searched_run, second}
    assert str(third) not in runs and str(foreign) not in runs and "elsewhere" not in html
    with app.app_context():
        expected = db.session.scalar(sa.select(sa.func.count()).select_from(LogEntry).join(Run).where(
            Run.workflow_id == db.session.scalar(sa.select(Workflow.id).where(Workflow.key == "invoice-post")),
            LogEntry.technical.is_(False),
            sa.or_(LogEntry.record_key == "INV-2291", LogEntry.message.ilike("%INV-2291%"))))
    assert len(found) == expected
    meta = client.get("/workflows/invoice-post/logs?q=invoice_id:INV-5000").get_data(as_text=True)
    assert re.findall(r'<a href="/runs/(\d+)">', meta) == [str(third)]
    # The workflow page links to it.
    assert 'href="/workflows/invoice-post/logs"' in client.get("/workflows/invoice-post").get_data(as_text=True)


def test_workflow_log_search_pages_by_id_and_stays_within_its_dates(app, make_user, load_workflow, drain):
    load_workflow(steps_workflow("paged", [{"key": "a", "type": "noop"}]))
    run_id = start(app, "paged", make_user("admin", "boss@test.example"))
    drain()
    now = utcnow()
    with app.app_context():
        db.session.execute(sa.insert(LogEntry), [
            {"run_id": run_id, "level": "info", "level_rank": 1, "message": f"line {i}", "record_key": "K-9",
             "technical": False, "created_at": now - timedelta(minutes=i)} for i in range(130)
        ] + [{"run_id": run_id, "level": "info", "level_rank": 1, "message": "long ago", "record_key": "K-9",
              "technical": False, "created_at": now - timedelta(days=45)}])
        db.session.commit()
    client = _sign_in(app, make_user, "viewer")
    first = client.get("/workflows/paged/logs?q=K-9").get_data(as_text=True)
    older = re.search(r'href="(/workflows/paged/logs\?[^"]*before=\d+[^"]*)">Older lines', first)
    assert older and first.count("data-id=") == 100 and "long ago" not in first
    second = client.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert second.count("data-id=") == 30 and "Older lines" not in second and "long ago" not in second
    since = (now - timedelta(days=60)).date().isoformat()
    everything = client.get(f"/workflows/paged/logs?q=K-9&since={since}&before={2**40}").get_data(as_text=True)
    assert everything.count("data-id=") == 100
    assert "long ago" in client.get(f"/workflows/paged/logs?q=long&since={since}").get_data(as_text=True)


def _error_line(run_id: int, when: datetime, message: str, level: str = "error") -> dict:
    return {"run_id": run_id, "level": level, "level_rank": LogLevel(level).rank, "message": message,
            "record_key": "INV-1", "technical": False, "created_at": when, "meta": {"error_code": "LEDGER_DOWN"}}


def test_errors_csv_exports_error_lines_in_the_date_range_with_run_and_step(app, make_user, load_workflow, drain):
    load_workflow(steps_workflow("nightly", [{"key": "a", "type": "fail", "name": "Post batch",
                                             "with": {"code": "LEDGER_DOWN", "message": "ledger is down"}}]))
    owner = make_user("admin", "boss@test.example")
    failed = start(app, "nightly", owner)
    drain()
    other = start(app, "nightly", owner)
    drain()
    with app.app_context():
        db.session.execute(sa.insert(LogEntry), [
            _error_line(other, datetime(2026, 10, 31, 23, 59, 59), "the day before"),
            _error_line(other, datetime(2026, 11, 1, 0, 0, 0), "first day"),
            _error_line(other, datetime(2026, 11, 21, 23, 59, 59), "last day"),
            _error_line(other, datetime(2026, 11, 22, 0, 0, 0), "the day after"),
            _error_line(other, datetime(2026, 11, 10), "only a warning", level="warning"),
        ])
        db.session.commit()
    client = _sign_in(app, make_user, "operator")
    response = client.get("/workflows/nightly/errors.csv?since=2026-11-01&until=2026-11-21")
    rows = _csv(response)
    assert rows[0] == ERROR_COLUMNS
    assert [r[6] for r in rows[1:]] == ["first day", "last day"]
    assert rows[1][:6] == ["2026-11-01T00:00:00.000Z", str(other), get_run(app, other).status, "", "LEDGER_DOWN",
                           "INV-1"]
    assert response.headers["Content-Disposition"].startswith(
        'attachment; filename="flowdesk-nightly-errors-2026-11-01-to-2026-11-21.csv"')
    # With no dates: the last 30 days, which hold the real failure with its step and run status.
    recent = _csv(client.get("/workflows/nightly/errors.csv"))[1:]
    mine = [r for r in recent if r[1] == str(failed)]
    assert mine and mine[0][2:5] == ["failed", "Post batch", "LEDGER_DOWN"] and "ledger is down" in mine[0][6]


@pytest.mark.parametrize("query, field", [
    ("since=2026-13-01", "since"), ("until=yesterday", "until"), ("since=2026-11-1", "since"),
    ("since=2026-11-21&until=2026-11-01", "since"),
])
def test_bad_dates_are_400_naming_the_field(app, make_user, searched_run, query, field):
    client = _sign_in(app, make_user, "operator")
    for path in ("/workflows/invoice-post/errors.csv", "/workflows/invoice-post/logs"):
        response = client.get(f"{path}?{query}")
        assert response.status_code == 400
        text = response.get_data(as_text=True)
        assert f"&#39;{field}&#39;" in text or f"'{field}'" in text


def test_http_steps_log_request_and_answer_as_a_technical_line_with_credentials_masked(
    app, make_user, load_workflow, drain,
):
    load_workflow(steps_workflow("masked", [
        {"key": "call", "type": "http_request", "name": "Call",
         "with": {"url": "{{ vars.sandbox_url }}/echo/x?api_key=s3cr3t-value&page=2",
                  "headers": {"Authorization": "Bearer tok-123", "X-Auth-Token": "tok-456", "X-Trace": "visible"}}},
    ]))
    run_id = start(app, "masked", make_user("admin", "boss@test.example"))
    drain()
    assert get_run(app, run_id).status == "completed"
    with app.app_context():
        lines = db.session.execute(sa.select(LogEntry.message, LogEntry.technical, LogEntry.level)
                                   .where(LogEntry.run_id == run_id)).all()
    technical = [m for m, t, _ in lines if t]
    assert len(technical) == 1
    exchange = technical[0]
    assert "/echo/x?api_key=***&page=2" in exchange.splitlines()[0]
    assert "  Authorization: ***" in exchange and "  X-Auth-Token: ***" in exchange
    assert "  X-Trace: visible" in exchange
    assert "tok-123" not in exchange and "tok-456" not in exchange
    assert "Response: 200 OK" in exchange and "Content-Type: application/json" in exchange
    assert '"raw_uri"' in exchange  # the body's first 2 KB
    visible = [m for m, t, _ in lines if not t]
    assert any("api_key=***&page=2 answered 200" in m for m in visible)
    assert not any("s3cr3t" in m or "tok-123" in m for m in visible)
    operator, support = _sign_in(app, make_user, "operator"), _sign_in(app, make_user, "support")
    assert "X-Trace: visible" not in operator.get(f"/runs/{run_id}").get_data(as_text=True)
    assert "X-Trace: visible" in support.get(f"/runs/{run_id}").get_data(as_text=True)


def test_url_and_header_masking():
    from app.security.masking import mask_headers, mask_url

    assert mask_url("https://user:pw@api.example/x?token=a&q=b&Secret=c") == \
        "https://***@api.example/x?token=***&q=b&Secret=***"
    assert mask_url("https://api.example/x?q=a%20b") == "https://api.example/x?q=a%20b"
    assert mask_headers({"Cookie": "a", "Set-Cookie": "b", "Proxy-Authorization": "c", "X-Api-Key": "d",
                         "X-Client-Secret": "e", "Accept": "f"}) == {
        "Cookie": "***", "Set-Cookie": "***", "Proxy-Authorization": "***", "X-Api-Key": "***",
        "X-Client-Secret": "***", "Accept": "f"}


def test_a_failed_http_step_keeps_its_output_and_its_fix_names_the_values_the_service_accepts(
    app, make_user, demo_workflows, drain,
):
    run_id = start(app, "payment-reminders", make_user("operator", "runner@test.example"), {"since": "2026-11-01"})
    drain()
    run = get_run(app, run_id)
    assert run.status == "failed"
    send = next(s for s in run.steps if s.step_key == "send")
    assert send.error_code == "HTTP_422"
    assert send.output["status"] == 422
    assert send.output["json"]["known_templates"] == ["reminder-v1"]
    assert "does not exist on the mail relay" in send.output["text"]
    assert "Content-Type" in send.output["headers"]
    assert send.suggested_fix == ("The service said: \"template 'reminder-v2' does not exist on the mail relay\". "
                                  "The service accepts: reminder-v1. Change the step's settings or parameters to one "
                                  "of these.")
    with app.app_context():
        technical = db.session.scalars(sa.select(LogEntry.message).where(
            LogEntry.run_id == run_id, LogEntry.technical.is_(True))).all()
    assert any(m.startswith("Request: POST ") and "Response: 422" in m for m in technical)
    client = _sign_in(app, make_user, "viewer")
    page = client.get(f"/runs/{run_id}").get_data(as_text=True)
    assert "The service accepts: reminder-v1." in page and "known_templates" in page  # the step's Output


def test_suggested_fix_quotes_a_message_or_falls_back():
    from app.engine.steps.http import GENERIC_FIX, suggested_fix

    assert suggested_fix({"detail": "amount must be positive"}) == 'The service said: "amount must be positive".'
    assert suggested_fix({"error": {"message": "bad currency"}, "allowed_currencies": ["EUR", "USD"]}) == (
        'The service said: "bad currency". The service accepts: EUR, USD. Change the step\'s settings or parameters '
        "to one of these.")
    assert suggested_fix({"status": 500}) == GENERIC_FIX
    assert suggested_fix(None) == GENERIC_FIX


def test_the_log_export_streams_twenty_thousand_lines(app, make_user, load_workflow, drain):
    load_workflow(steps_workflow("bulk", [{"key": "a", "type": "noop"}]))
    run_id = start(app, "bulk", make_user("admin", "boss@test.example"))
    drain()
    now = utcnow()
    with app.app_context():
        before = db.session.scalar(sa.select(sa.func.count()).select_from(LogEntry).where(LogEntry.run_id == run_id))
        db.session.execute(sa.insert(LogEntry), [
            {"run_id": run_id, "level": "info", "level_rank": 1, "message": f"bulk line {i}, \"quoted\"",
             "record_key": f"K-{i % 7}", "technical": False, "created_at": now, "meta": {"i": i}}
            for i in range(20_000)
        ])
        db.session.commit()
    client = _sign_in(app, make_user, "operator")
    response = client.get(f"/runs/{run_id}/log.csv")
    assert response.is_streamed
    chunks = list(response.response)
    assert len(chunks) > 20  # written as the rows are read, not built whole
    rows = list(csv.reader(io.StringIO(b"".join(chunks).decode("utf-8"), newline="")))
    assert len(rows) == 1 + before + 20_000
    assert rows[-1][4] == 'bulk line 19999, "quoted"' and rows[-1][5] == '{"i": 19999}'
    filtered = _csv(client.get(f"/runs/{run_id}/log.csv?q=key:K-3"))
    assert len(filtered) == 1 + len([i for i in range(20_000) if i % 7 == 3])
