"""Steps cannot reach internal services: the outbound address policy, URL placeholders, and what errors reveal."""
import re
import socket
import struct
import threading
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import LogEntry
from app.security.outbound import OutboundBlocked, OutboundPolicy
from tests.conftest import PASSWORD, csrf_token
from tests.factories import get_run, start, steps_workflow


@contextmanager
def allowed(app, entries: str):
    """Let steps reach `entries` (FLOWDESK_OUTBOUND_ALLOW syntax) for the duration of the block."""
    before = app.extensions["flowdesk_outbound"]
    app.extensions["flowdesk_outbound"] = before.merged(OutboundPolicy.parse(entries))
    try:
        yield
    finally:
        app.extensions["flowdesk_outbound"] = before


@contextmanager
def tcp_listener(behaviour: str = "close"):
    """A plain TCP server on 127.0.0.1 that records every connection it accepts."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    accepted: list[str] = []
    stop = threading.Event()

    def serve():
        # Every accepted connection is closed, whatever happens, and the loop outlives an error: a connection left
        # open would make the step wait for its whole HTTP timeout.
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:  # the accept timed out (TimeoutError), or a client gave up before it
                continue
            accepted.append(behaviour)
            try:
                if behaviour == "reset":
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            finally:
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], accepted
    finally:
        stop.set()
        thread.join()
        server.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def url_workflow(key: str, url: str, timeout: float | None = None) -> dict:
    settings = {"url": url} if timeout is None else {"url": url, "timeout": timeout}
    return steps_workflow(key, [{"key": "call", "type": "http_request", "name": "Call", "with": settings}],
                          params=[{"name": "url", "type": "string", "required": False},
                                  {"name": "x", "type": "string", "required": False},
                                  {"name": "q", "type": "string", "required": False}])


def run_once(app, load_workflow, make_user, drain, template: str, timeout: float | None = None, **params):
    load_workflow(url_workflow("probe", template, timeout))
    run_id = start(app, "probe", make_user("operator"), params)
    drain()
    return get_run(app, run_id)


@pytest.mark.parametrize("address, kind", [
    ("127.0.0.1", "loopback"), ("10.1.2.3", "private"), ("172.16.0.9", "private"), ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"), ("0.0.0.0", "unspecified"), ("100.64.0.1", "private"), ("::1", "loopback"),
    ("fd00:ec2::254", "private"), ("fe80::1", "link-local"), ("::ffff:127.0.0.1", "loopback"),
])
def test_internal_addresses_are_refused_by_default(address, kind):
    with pytest.raises(OutboundBlocked, match=f"is a {kind} address.*FLOWDESK_OUTBOUND_ALLOW"):
        OutboundPolicy().check(address, 80)


def test_a_host_name_is_judged_by_the_addresses_it_resolves_to():
    with pytest.raises(OutboundBlocked, match=r"localhost \(127\.0\.0\.1\) is a loopback address"):
        OutboundPolicy().check("localhost", 6379)


def test_public_addresses_pass_and_the_checked_address_is_what_to_connect_to():
    assert OutboundPolicy().check("93.184.215.14", 443) == "93.184.215.14"
    assert OutboundPolicy.parse("localhost").check("localhost", 8080) == "127.0.0.1"


def test_the_allow_setting_takes_host_names_host_port_pairs_and_cidr_ranges():
    policy = OutboundPolicy.parse("metrics.internal, 127.0.0.1:5000, 10.20.0.0/16, [::1]:8443, *.corp.example")
    assert policy.check("127.0.0.1", 5000) == "127.0.0.1"
    with pytest.raises(OutboundBlocked):
        policy.check("127.0.0.1", 6379)  # only the named port
    assert policy.check("10.20.3.4", 5432) == "10.20.3.4"
    with pytest.raises(OutboundBlocked):
        policy.check("10.21.0.1", 5432)
    assert policy.check("::1", 8443) == "::1"
    assert policy._allows("db.corp.example", 5432, __import__("ipaddress").ip_address("10.0.0.1"), "/")


@pytest.mark.parametrize("entry", ["http://x/", "host:99999", "a b", "host:port", "host/path"])
def test_a_malformed_allow_entry_is_refused_naming_it(entry):
    with pytest.raises(ValueError, match=f"FLOWDESK_OUTBOUND_ALLOW: '{re.escape(entry)}'"):
        OutboundPolicy.parse(entry)


def test_a_bad_allow_setting_stops_the_app_with_a_message(monkeypatch):
    from app import create_app
    from app.config import ConfigError

    monkeypatch.setenv("FLOWDESK_OUTBOUND_ALLOW", "redis:notaport")
    with pytest.raises(ConfigError, match="FLOWDESK_OUTBOUND_ALLOW: 'redis:notaport'"):
        create_app({"TESTING": True, "SECRET_KEY": "x"})


def test_a_step_cannot_reach_a_service_on_loopback(app, load_workflow, make_user, drain):
    with tcp_listener() as (port, accepted):
        run = run_once(app, load_workflow, make_user, drain, "{{ params.url | raw_url }}",
                       url=f"http://127.0.0.1:{port}/")
    step = run.steps[0]
    assert run.status == "failed" and step.error_code == "HTTP_BLOCKED"
    assert f"127.0.0.1:{port}" in step.error_message and "FLOWDESK_OUTBOUND_ALLOW" in step.error_message
    assert accepted == []  # refused before any connection was made


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/", "http://[::1]:6379/", "http://0.0.0.0:5432/",
    "http://localhost:6379/", "http://user@127.0.0.1:6379/", "http://2130706433:6379/",
])
def test_metadata_and_internal_urls_are_refused(app, load_workflow, make_user, drain, url):
    run = run_once(app, load_workflow, make_user, drain, "{{ params.url | raw_url }}", url=url)
    assert run.status == "failed"
    assert run.steps[0].error_code in ("HTTP_BLOCKED", "HTTP_CONNECTION")
    assert run.steps[0].error_code == "HTTP_BLOCKED" or "could not connect" in run.steps[0].error_message


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://127.0.0.1:6379/_INFO", "ftp://example.com/"])
def test_only_http_and_https_urls_are_allowed(app, load_workflow, make_user, drain, url):
    run = run_once(app, load_workflow, make_user, drain, "{{ params.url | raw_url }}", url=url)
    assert run.steps[0].error_code == "HTTP_BLOCKED"
    assert "only http and https" in run.steps[0].error_message


def test_a_whole_url_from_a_parameter_needs_raw_url(app, load_workflow, make_user, drain, live_server):
    run = run_once(app, load_workflow, make_user, drain, "{{ params.url }}", url=f"{live_server}/sandbox/health")
    step = run.steps[0]
    assert step.error_code == "HTTP_BLOCKED" and "raw_url" in step.suggested_fix
    assert step.input["url"] == f"{live_server}/sandbox/health".replace(":", "%3A").replace("/", "%2F")


def test_placeholders_in_a_path_or_query_cannot_change_the_url(app, load_workflow, make_user, drain, sandbox_port):
    with allowed(app, f"127.0.0.1:{sandbox_port}"):  # demo mode alone refuses a path that climbs, even encoded
        run = run_once(app, load_workflow, make_user, drain,
                       "{{ vars.sandbox_url }}/echo/{{ params.x }}?q={{ params.q }}", x="../health", q="a&admin=1#frag")
    step = run.steps[0]
    assert run.status == "completed", step.error_message
    assert step.output["json"]["raw_uri"] == "/sandbox/echo/..%2Fhealth?q=a%26admin%3D1%23frag"
    assert step.output["json"]["args"] == {"q": ["a&admin=1#frag"]}


def test_the_allow_setting_lets_a_step_reach_an_internal_host_and_sends_its_name(
    app, load_workflow, make_user, drain, sandbox_port,
):
    with allowed(app, "localhost"):
        run = run_once(app, load_workflow, make_user, drain, f"http://localhost:{sandbox_port}/sandbox/echo/ok")
    assert run.status == "completed"
    assert run.steps[0].output["json"]["host"] == f"localhost:{sandbox_port}"


def test_redirects_are_not_followed(app, load_workflow, make_user, drain):
    run = run_once(app, load_workflow, make_user, drain, "{{ vars.sandbox_url }}/redirect?to={{ params.url }}",
                   url="http://127.0.0.1:6379/")
    step = run.steps[0]
    assert run.status == "completed"
    assert step.output["status"] == 302 and step.output["headers"]["Location"] == "http://127.0.0.1:6379/"


@pytest.mark.parametrize("behaviour", ["refused", "reset"])
def test_connection_failures_read_the_same_and_the_socket_error_is_technical(
    app, load_workflow, make_user, drain, client, behaviour,
):
    def run_against(port):
        # A short step timeout: a connection nobody answers fails the test as HTTP_TIMEOUT, not as a drain timeout.
        with allowed(app, f"127.0.0.1:{port}"):
            return run_once(app, load_workflow, make_user, drain, f"http://127.0.0.1:{port}/x", timeout=5)

    if behaviour == "refused":
        port = _free_port()
        run = run_against(port)
    else:
        with tcp_listener("reset") as (port, accepted):
            run = run_against(port)
        assert accepted
    step = run.steps[0]
    assert step.error_code == "HTTP_CONNECTION"
    assert step.error_message == f"GET http://127.0.0.1:{port}/x: could not connect to 127.0.0.1:{port}"
    with app.app_context():
        lines = db.session.execute(sa.select(LogEntry.message, LogEntry.technical).where(LogEntry.run_id == run.id))
        technical = [m for m, t in lines if t]
    assert technical and any(word in technical[0].lower() for word in ("refused", "reset", "aborted", "closed"))

    def page_as(role):
        email = make_user(role, f"{role}-{behaviour}@test.example")
        browser = app.test_client()
        browser.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf_token(browser)})
        return browser.get(f"/runs/{run.id}").get_data(as_text=True)

    operator_page = page_as("operator")
    assert technical[0] not in operator_page and "could not connect to" in operator_page
    assert technical[0].split(": ", 1)[0] in page_as("support")


def test_demo_mode_allows_the_sandbox_and_nothing_else(app):
    from app.config import outbound_policy

    policy = outbound_policy({"DEMO_MODE": True, "FLOWDESK_VARS": {"sandbox_url": "http://127.0.0.1:5000/sandbox"}})
    assert policy.check("127.0.0.1", 5000, "/sandbox/health?x=1") == "127.0.0.1"
    for port, path in [(6379, "/sandbox/health"), (5000, "/api/v1/workflows"), (5000, "/sandbox/../api/v1/runs"),
                       (5000, "/sandbox/..%2Fapi"), (5000, "/sandboxes"), (5000, "/")]:
        with pytest.raises(OutboundBlocked):
            policy.check("127.0.0.1", port, path)
    with pytest.raises(OutboundBlocked):
        outbound_policy({"DEMO_MODE": False, "FLOWDESK_VARS": {"sandbox_url": "http://127.0.0.1:5000/x"}}).check(
            "127.0.0.1", 5000, "/x/y")


def test_a_path_prefix_entry_allows_only_urls_under_it():
    policy = OutboundPolicy.parse("127.0.0.1:8025/relay")
    assert policy.check("127.0.0.1", 8025, "/relay/send") == "127.0.0.1"
    for path in ("/admin", "/relay/../admin", "/relayx"):
        with pytest.raises(OutboundBlocked):
            policy.check("127.0.0.1", 8025, path)


def test_in_demo_mode_a_step_cannot_reach_the_consoles_own_api(app, load_workflow, make_user, drain, live_server):
    run = run_once(app, load_workflow, make_user, drain, "{{ params.url | raw_url }}",
                   url=f"{live_server}/api/v1/workflows")
    assert run.steps[0].error_code == "HTTP_BLOCKED"
