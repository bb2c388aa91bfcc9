"""Browser tests: headless Chromium drives the pages as a person would, against the live server,
with real RQ worker and scheduler processes doing the work.

Every assertion about work done by the workers uses Playwright's auto-waiting `expect(...)`, and the
run pages are checked to update in place (htmx polling), never by reloading.
"""
import functools
import os
import re
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, ROOT

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = ROOT / "test-artifacts"
UI_TIMEOUT_MS = 10_000  # page navigation and htmx swaps
WORK_TIMEOUT_MS = 30_000  # things the worker processes do


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module; skipped (failed under CI=true) when it is not installed."""
    if not CHROMIUM.exists():
        message = f"Chromium not found at {CHROMIUM}; apt-get install -y chromium"
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser, live_server):
    """A fresh browser context (no cookies) and page, with relative URLs resolved against the live server.

    Any script error or console error (a Content-Security-Policy violation is one) fails the test.
    """
    context = browser.new_context(base_url=live_server, viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(UI_TIMEOUT_MS)
    context.set_default_navigation_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    try:
        yield page
    finally:
        context.close()
    expected = [p for p in problems if "status of 4" in p]  # pages that answer 4xx on purpose
    assert [p for p in problems if p not in expected] == []


# axe-core from the npm registry, vendored (tests/vendor/axe-core/README.md says which version and how to update it).
AXE_SCRIPT = ROOT / "tests" / "vendor" / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]  # WCAG 2.1 AA and best practice
AXE_RUN = """tags => axe.run(document, {runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]})
    .then(results => results.violations.map(v => ({
        id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.map(n => ({target: n.target.join(" "), summary: n.failureSummary})),
    })))"""


@functools.cache
def _axe_source() -> str:
    return AXE_SCRIPT.read_text(encoding="utf-8")


def axe_violations(page) -> list[dict]:
    """Run the vendored axe-core on the page as it is now; returns its violations (id, impact, help, nodes).

    The script goes in through page.evaluate, which the page's Content-Security-Policy (script-src 'self')
    does not apply to; an inline <script> tag would be refused, and the CSP stays on for the whole test."""
    if not page.evaluate("typeof window.axe === 'object' && typeof window.axe.run === 'function'"):
        page.evaluate(_axe_source())
    return page.evaluate(AXE_RUN, AXE_TAGS)


def describe_violations(violations: list[dict]) -> str:
    """One paragraph per broken rule: its id, impact and help, then each offending element's selector."""
    lines = []
    for v in violations:
        lines.append(f"{v['id']} ({v['impact']}): {v['help']} [{len(v['nodes'])} element(s)]")
        for node in v["nodes"][:5]:
            summary = " ".join((node["summary"] or "").split())
            lines.append(f"    {node['target']}: {summary[:300]}")
    return "\n".join(lines)


def assert_accessible(page, name: str | None = None) -> None:
    """axe-core 4.14 finds no violation of WCAG 2.1 A/AA or best practice on the page as it is now (and,
    with `name`, keep a screenshot)."""
    violations = axe_violations(page)
    assert violations == [], f"axe-core found violations on {page.url}:\n{describe_violations(violations)}"
    if name:
        ARTIFACTS.mkdir(exist_ok=True)
        width = page.viewport_size["width"]
        page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)


# ---------------------------------------------------------------- helpers


def sign_in(page, email: str) -> None:
    """Sign in through the login form, like a person."""
    from playwright.sync_api import expect

    page.goto("/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/workflows$"))
    expect(page.get_by_role("heading", name="Workflows", exact=True)).to_be_visible()


def mark_page(page) -> None:
    """Put a marker on `window`; it survives htmx swaps but not a reload or navigation."""
    page.evaluate("window.__noReload = 1")


def assert_not_reloaded(page) -> None:
    assert page.evaluate("window.__noReload") == 1, "the page was reloaded or navigated away"


def start_run(page, workflow_key: str, fill) -> int:
    """Open a workflow's page, fill its Run form with `fill(page)`, start it; returns the run id."""
    from playwright.sync_api import expect

    page.goto(f"/workflows/{workflow_key}")
    fill(page)
    page.get_by_role("button", name="Start run").click()
    expect(page).to_have_url(re.compile(r"/runs/\d+$"))
    expect(page.locator("#run-panel")).to_be_visible()
    return int(page.url.rsplit("/", 1)[1])


def step(page, key: str):
    return page.locator(f"#run-steps li.step[data-step='{key}']")


def day_with_absences(site: str) -> str:
    """A day on which the sandbox reports someone absent at `site` (so the run logs a warning)."""
    from app.blueprints.sandbox import SITES, _n

    day = date(2026, 11, 20)
    for _ in range(365):
        if any(_n(person, day.isoformat()) % 5 == 0 for person in SITES[site]):
            return day.isoformat()
        day += timedelta(days=1)
    raise AssertionError(f"the sandbox reports nobody absent at {site} for a year")


def finished_attendance_run(page, email: str):
    """Sign in, run Attendance import for a day with absences, and open the finished run's page as someone
    opening it later would; returns the run id and the job log's lines."""
    from playwright.sync_api import expect

    sign_in(page, email)
    day = day_with_absences("north")

    def fill(p):
        p.select_option("#param-site", "north")
        p.fill("#param-day", day)

    run_id = start_run(page, "attendance-import", fill)
    expect(page.locator("#run-status")).to_have_text("Completed", timeout=WORK_TIMEOUT_MS)
    page.goto(f"/runs/{run_id}")
    log_lines = page.locator("#log-lines")
    expect(log_lines).to_contain_text("Run completed")
    mark_page(page)
    return run_id, log_lines


def recent_since() -> str:
    """A recent `since` date for invoice-sync; over two weeks the sandbox always has some invoices."""
    return (date.today() - timedelta(days=14)).isoformat()


# ---------------------------------------------------------------- tests


def test_operator_runs_a_workflow_and_watches_it_complete_live(page, demo_workflows, make_user, request):
    from playwright.sync_api import expect

    sign_in(page, make_user("operator"))

    # Search narrows the table in place and pushes ?q=attend into the address bar.
    mark_page(page)
    rows = page.locator("#workflow-table tbody tr")
    expect(rows).to_have_count(5)
    page.get_by_role("searchbox", name="Search workflows").fill("attend")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Attendance import")
    expect(page).to_have_url(re.compile(r"/workflows\?(.*&)?q=attend(&|$)"))
    assert_not_reloaded(page)

    page.get_by_role("link", name="Attendance import", exact=True).click()
    expect(page.get_by_role("heading", name=re.compile("Attendance import"))).to_be_visible()
    page.select_option("#param-site", "north")
    page.fill("#param-day", "2026-11-20")
    page.get_by_role("button", name="Start run").click()
    expect(page).to_have_url(re.compile(r"/runs/\d+$"))

    # No worker runs yet, so the run page must be the one to show the run move on, live.
    status = page.locator("#run-status")
    expect(status).to_have_text("Pending")
    mark_page(page)
    request.getfixturevalue("worker_processes")

    expect(status).to_have_text("Completed", timeout=WORK_TIMEOUT_MS)
    steps = page.locator("#run-steps li.step")
    expect(steps.filter(has_text="Fetch attendance rows")).to_have_count(1)
    expect(steps.filter(has_text="Anyone absent?")).to_have_count(1)
    expect(steps.filter(has_text=re.compile("Flag absences|All present"))).to_have_count(1)
    for item in steps.all():
        expect(item.locator(".badge")).to_have_text("Completed")
    expect(page.locator(".progress-label")).to_contain_text("100%")
    expect(page.get_by_role("progressbar")).to_have_attribute("value", "100")
    log_lines = page.locator("#log-lines")
    expect(log_lines).to_contain_text("Run completed", timeout=WORK_TIMEOUT_MS)
    expect(page.locator("#log-tail")).to_have_text("End of log.", timeout=WORK_TIMEOUT_MS)
    assert_not_reloaded(page)

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "run-completed.png"), full_page=True)


def test_log_panel_stops_saying_live_once_the_run_finishes(page, demo_workflows, make_user, worker_processes):
    """The job log must not keep claiming to be live after the run has finished (no reload)."""
    from playwright.sync_api import expect

    sign_in(page, make_user("operator"))
    since = recent_since()
    start_run(page, "invoice-sync", lambda p: p.fill("#param-since", since))
    mark_page(page)
    live_marker = page.locator("#log-panel .live:not(.off)")
    expect(page.locator("#run-status")).to_have_text("Waiting", timeout=WORK_TIMEOUT_MS)
    expect(live_marker).to_have_count(1)
    expect(live_marker).to_contain_text("Live")
    expect(page.locator("#run-status")).to_have_text("Completed", timeout=25_000)
    expect(page.locator("#log-tail")).to_have_text("End of log.", timeout=WORK_TIMEOUT_MS)
    expect(live_marker).to_have_count(0, timeout=5_000)
    expect(page.locator("#log-panel")).not_to_contain_text("Live")
    assert_not_reloaded(page)

    # The Report line carries metadata (the demo's log step sets `meta`): a name:value search finds it alone.
    page.get_by_label("Search").fill(f"since:{since}")
    page.get_by_role("button", name="Search").click()
    log_lines = page.locator("#log-lines")
    expect(log_lines).to_contain_text("ledger batch")
    expect(log_lines).not_to_contain_text("Run completed")


def test_run_form_shows_errors_next_to_fields(page, demo_workflows, make_user):
    from playwright.sync_api import expect

    sign_in(page, make_user("operator"))
    page.goto("/workflows/invoice-sync")
    page.fill("#param-since", "")
    # Limit is an <input type=number>: Chromium will not take letters such as "abc", so type what a
    # person can type there that is still wrong for a whole-number parameter.
    page.fill("#param-limit", "2.5")
    page.get_by_role("button", name="Start run").click()

    # The errors swap in place: the address stays the workflow's, so a reload does not post the form again.
    expect(page.locator(".field.has-error").first).to_be_visible()
    expect(page).to_have_url(re.compile(r"/workflows/invoice-sync$"))
    since_field = page.locator(".field", has=page.locator("#param-since"))
    limit_field = page.locator(".field", has=page.locator("#param-limit"))
    expect(since_field).to_have_class(re.compile(r"\bhas-error\b"))
    expect(since_field.locator(".field-error")).to_contain_text("required")
    expect(limit_field).to_have_class(re.compile(r"\bhas-error\b"))
    expect(limit_field.locator(".field-error")).to_contain_text("whole number")
    expect(page.locator("#param-since")).to_have_value("")
    expect(page.locator("#param-limit")).to_have_value("2.5")

    # The form still works once the values are put right.
    page.fill("#param-since", recent_since())
    page.fill("#param-limit", "10")
    page.get_by_role("button", name="Start run").click()
    expect(page).to_have_url(re.compile(r"/runs/\d+$"))


def test_wait_step_parks_and_resumes_live(page, demo_workflows, make_user, worker_processes):
    from playwright.sync_api import expect

    sign_in(page, make_user("operator"))
    start_run(page, "invoice-sync", lambda p: p.fill("#param-since", recent_since()))
    mark_page(page)

    status = page.locator("#run-status")
    cool_down = step(page, "pause")
    expect(status).to_have_text("Waiting", timeout=WORK_TIMEOUT_MS)
    expect(cool_down).to_contain_text("Cool down")
    expect(cool_down.locator(".badge")).to_have_text("Waiting")
    expect(cool_down).to_contain_text("Waits until")

    expect(status).to_have_text("Completed", timeout=25_000)
    expect(cool_down.locator(".badge")).to_have_text("Completed")
    expect(cool_down).to_contain_text("resumed")
    expect(step(page, "post").locator(".badge")).to_have_text("Completed")
    expect(page.locator("#log-lines")).to_contain_text("Run completed", timeout=WORK_TIMEOUT_MS)
    assert_not_reloaded(page)


def test_failed_run_shows_error_and_suggested_fix(page, demo_workflows, make_user, worker_processes):
    from playwright.sync_api import expect

    sign_in(page, make_user("operator"))
    start_run(page, "payment-reminders", lambda p: p.fill("#param-since", recent_since()))
    mark_page(page)

    expect(page.locator("#run-status")).to_have_text("Failed", timeout=WORK_TIMEOUT_MS)
    send = step(page, "send")
    expect(send).to_contain_text("Send reminders")
    expect(send.locator(".badge")).to_have_text("Failed")
    expect(send.locator(".error-code")).to_have_text("HTTP_422")
    expect(send.locator(".step-error")).to_contain_text("template 'reminder-v2' does not exist")
    expect(send.locator(".fix")).to_contain_text("Suggested fix:")
    # The run's own summary carries the error too, and the step after it never ran.
    expect(page.locator("#run-panel > .step-error .error-code")).to_have_text("HTTP_422")
    expect(step(page, "done")).to_have_count(0)
    assert_not_reloaded(page)


def test_retry_a_failed_run_from_its_plan_and_see_the_second_attempt(page, demo_workflows, make_user,
                                                                     worker_processes):
    """Retry run shows the plan first: the step that completed is reused, the failed one runs again. Nothing was
    corrected, so attempt 2 fails at the same step, and the first step did not run again."""
    from playwright.sync_api import expect

    sign_in(page, make_user("operator"))
    run_id = start_run(page, "payment-reminders", lambda p: p.fill("#param-since", recent_since()))
    expect(page.locator("#run-status")).to_have_text("Failed", timeout=WORK_TIMEOUT_MS)
    page.get_by_role("link", name="Retry run").click()
    expect(page).to_have_url(re.compile(rf"/runs/{run_id}/retry$"))
    plan = page.locator("#retry-plan")
    expect(plan.locator('tr[data-step="overdue"]')).to_contain_text("reused (completed in attempt 1)")
    expect(plan.locator('tr[data-step="send"]')).to_contain_text("runs again")
    expect(plan.locator('tr[data-step="done"]')).to_contain_text("runs")
    assert_accessible(page, "retry-plan")
    page.get_by_role("button", name=re.compile("Retry from")).click()
    expect(page).to_have_url(re.compile(rf"/runs/{run_id}$"))
    expect(page.locator("#run-attempts")).to_be_visible(timeout=WORK_TIMEOUT_MS)
    expect(page.locator("#run-status")).to_have_text("Failed", timeout=WORK_TIMEOUT_MS)
    expect(page.locator("#attempt-2-steps")).to_be_visible()
    expect(page.locator('li.step[data-step="overdue"]')).to_have_count(1)
    expect(page.locator('li.step[data-step="send"]')).to_have_count(2)
    expect(page.locator("#run-attempts tbody tr")).to_have_count(2)
    expect(page.get_by_role("button", name="Retry step")).to_be_visible()
    assert_accessible(page, "run-with-two-attempts")


def test_the_run_dialog_end_to_end(page, demo_workflows, make_user, worker_processes):
    """Run on the workflow list opens a dialog with the form; Start execution keeps it open and follows the run
    live to its results; Test again shows the same values; Close (or Escape) shuts it and gives the focus back."""
    from playwright.sync_api import expect

    sign_in(page, make_user("operator"))
    page.goto("/workflows")
    mark_page(page)
    opener = page.get_by_role("link", name="Run Invoice sync")
    opener.click()
    dialog = page.locator("#run-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading", name="Run Invoice sync")).to_be_visible()
    assert_accessible(page, "run-dialog-form")
    since = recent_since()
    dialog.locator("#param-since").fill(since)
    dialog.get_by_role("button", name="Start execution").click()
    expect(dialog.locator("#dialog-status")).to_have_text("Waiting", timeout=WORK_TIMEOUT_MS)
    expect(dialog.locator('#dialog-steps li[data-step="pause"]')).to_contain_text("Waiting")
    assert_accessible(page, "run-dialog-live")
    expect(dialog.locator("#dialog-status")).to_have_text("Completed", timeout=25_000)
    expect(dialog.get_by_text("Workflow results")).to_be_visible()
    expect(dialog.get_by_role("link", name="View details")).to_have_attribute("href", re.compile(r"/runs/\d+$"))
    dialog.get_by_role("button", name="Test again").click()
    expect(dialog.locator("#param-since")).to_have_value(since)
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()
    expect(opener).to_be_focused()
    assert_not_reloaded(page)
    # Escape closes it too, and the page behind never changed.
    opener.click()
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page).to_have_url(re.compile(r"/workflows$"))


def test_viewer_sees_no_run_button(page, demo_workflows, make_user):
    from playwright.sync_api import expect

    sign_in(page, make_user("viewer"))
    expect(page.locator("#workflow-table").get_by_role("link", name=re.compile(r"^Run "))).to_have_count(0)
    page.get_by_role("link", name="Attendance import", exact=True).click()
    expect(page.get_by_role("heading", name="Steps")).to_be_visible()
    # No Run card at all: no heading, no sentence about what the role cannot do, no form.
    expect(page.locator("#run")).to_have_count(0)
    expect(page.get_by_role("heading", name="Run workflow")).to_have_count(0)
    expect(page.get_by_role("button", name="Start run")).to_have_count(0)
    expect(page.locator("main form")).to_have_count(0)
    assert_accessible(page, "workflow-viewer")


def test_an_automated_workflow_says_what_starts_it_and_may_still_be_run_by_hand(page, demo_workflows, make_user):
    """The list offers Run only for manual workflows; an automated one says what starts it, and its page keeps a
    secondary card for a run by hand."""
    from playwright.sync_api import expect

    sign_in(page, make_user("operator"))
    table = page.locator("#workflow-table")
    automated = table.get_by_role("row").filter(has_text="Connection check")
    expect(automated.get_by_role("cell").nth(2)).to_have_text("Automated")
    expect(automated.get_by_role("cell").nth(3)).to_have_text("API")
    expect(automated.get_by_role("link", name="Run Connection check")).to_have_count(0)
    expect(automated.get_by_role("link", name="History", exact=True)).to_be_visible()
    manual = table.get_by_role("row").filter(has_text="Attendance import")
    expect(manual.get_by_role("cell").nth(3)).to_have_text("Manual")
    expect(manual.get_by_role("link", name="Run Attendance import")).to_be_visible()

    automated.get_by_role("link", name="Connection check", exact=True).click()
    expect(page.get_by_role("heading", name=re.compile("Connection check"))).to_be_visible()
    expect(page.locator(".status-line")).to_contain_text("Started by the API.")
    expect(page.locator(".status-line")).to_contain_text("POST /api/v1/workflows/sandbox-health/runs")
    expect(page.get_by_role("heading", name="Run workflow")).to_have_count(0)
    by_hand = page.locator("#run")
    expect(by_hand.get_by_role("heading", name="Run now by hand")).to_be_visible()
    start = by_hand.get_by_role("button", name="Start run")
    expect(start).not_to_have_class(re.compile(r"\bbtn-primary\b"))
    assert_accessible(page, "workflow-automated")

    start.click()
    expect(page).to_have_url(re.compile(r"/runs/\d+$"))
    expect(page.locator("#run-panel")).to_contain_text("Manual")


def test_cancel_a_waiting_run_from_the_page(page, demo_workflows, make_user, worker_processes):
    from playwright.sync_api import expect

    sign_in(page, make_user("operator"))
    start_run(page, "invoice-sync", lambda p: p.fill("#param-since", recent_since()))
    mark_page(page)

    status = page.locator("#run-status")
    expect(status).to_have_text("Waiting", timeout=WORK_TIMEOUT_MS)
    dialogs = []
    page.once("dialog", lambda d: (dialogs.append(d.message), d.accept()))
    page.get_by_role("button", name="Cancel run").click()

    expect(status).to_have_text("Cancelled")
    assert dialogs and dialogs[0].startswith("Cancel run #"), dialogs
    expect(page.locator("#run-panel")).to_contain_text("Run cancelled.")
    expect(step(page, "pause").locator(".badge")).to_have_text("Cancelled")
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    expect(page.get_by_role("link", name="Run again")).to_be_visible()
    assert_not_reloaded(page)


def test_log_level_filter(page, demo_workflows, make_user, worker_processes):
    from playwright.sync_api import expect

    run_id, log_lines = finished_attendance_run(page, make_user("operator"))
    expect(log_lines).to_contain_text("absent at north")

    page.select_option("#log-level", label="Warning and above")
    expect(log_lines).not_to_contain_text("Run completed")
    expect(log_lines).to_contain_text("absent at north")
    expect(page.locator("#log-level")).to_have_value("warning")
    levels = log_lines.locator("span.level")
    expect(levels.first).to_be_visible()
    texts = [t.strip() for t in levels.all_text_contents()]
    assert texts and set(texts) <= {"warning", "error"}, texts
    assert_not_reloaded(page)


def test_search_a_finished_runs_log_keeps_the_level_in_the_url(page, demo_workflows, make_user, worker_processes):
    from playwright.sync_api import expect

    run_id, log_lines = finished_attendance_run(page, make_user("operator"))
    page.select_option("#log-level", label="Warning and above")
    expect(page).to_have_url(re.compile(rf"/runs/{run_id}\?level=warning$"))
    page.get_by_label("Search").fill("absent")
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(rf"/runs/{run_id}\?level=warning&q=absent$"))
    expect(log_lines).to_contain_text("absent at north")
    expect(log_lines).not_to_contain_text("Run completed")
    expect(page.locator("#log-level")).to_have_value("warning")
    expect(page.get_by_role("link", name="Export CSV")).to_have_attribute(
        "href", f"/runs/{run_id}/log.csv?level=warning&q=absent")
    assert_not_reloaded(page)
    # After the htmx swaps: axe leaves markup behind that a later history snapshot would trip over under the CSP.
    assert_accessible(page, "run-log-search")

    # Reloading the address shows the same filtered log.
    page.reload()
    expect(page.get_by_label("Search")).to_have_value("absent")
    expect(page.locator("#log-level")).to_have_value("warning")
    expect(log_lines).not_to_contain_text("Run completed")

    page.goto("/workflows/attendance-import")
    page.get_by_role("link", name="Logs", exact=True).click()
    page.get_by_label("Record key or text").fill("absent")
    page.get_by_role("button", name="Find").click()
    found = page.locator("#found-lines")
    expect(found).to_contain_text("absent at north")
    expect(found.get_by_role("link", name=f"Run #{run_id}").first).to_be_visible()
    assert_accessible(page, "workflow-logs")


@pytest.mark.parametrize("width", [1280, 390])
def test_every_page_is_accessible_and_fits_at(page, app, demo_workflows, make_user, worker_processes, width):
    """axe-core reports no violation on any page, at desktop width and at 390 px, and nothing scrolls sideways:
    every kind of page the other browser tests visit, runs in each state, and what a viewer sees."""
    from playwright.sync_api import expect

    from tests.factories import get_run, make_run, start, wait_for

    page.set_viewport_size({"width": width, "height": 900})

    def check(name):
        assert_accessible(page, name)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        wide = page.evaluate("""[...document.querySelectorAll('*')].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 8).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))""")
        assert overflow <= 1, f"{wide} {name} scrolls sideways by {overflow} px at {width} px"

    page.goto("/login")
    check("login")
    sign_in(page, make_user("support"))
    check("workflows")
    failed = start_run(page, "payment-reminders", lambda p: p.fill("#param-since", recent_since()))
    expect(page.locator("#run-status")).to_have_text("Failed", timeout=WORK_TIMEOUT_MS)
    page.goto(f"/runs/{failed}")
    check("run-failed")
    page.goto(f"/runs/{failed}?level=error&q=HTTP_422")
    check("run-log-search")
    page.goto("/workflows/payment-reminders/logs?q=HTTP_422")
    check("workflow-logs")
    page.goto("/workflows/invoice-sync")
    check("workflow")
    page.goto("/workflows/invoice-sync")  # a fresh page: axe leaves markup behind that htmx would snapshot
    page.get_by_role("button", name="Start run").click()
    expect(page.locator(".field.has-error").first).to_be_visible()
    check("run-form-errors")
    page.goto("/workflows/sandbox-health")
    check("workflow-automated")
    # Runs in the other states, written straight into the database: a running one (Cancel, a live progress
    # bar, polling), one waiting on its second step, a completed one with a warning, a cancelled one.
    for status, name in (("running", "run-running"), ("waiting", "run-waiting"), ("completed", "run-completed"),
                         ("cancelled", "run-cancelled"), ("waiting_for_approval", "run-waiting-for-approval"),
                         ("rejected", "run-rejected")):
        run_id = make_run(app, "attendance-import", status, steps=2, lines={"info": 4, "warning": 1},
                          trigger="manual", params={"site": "north", "day": "2026-11-20"})
        page.goto(f"/runs/{run_id}")
        expect(page.locator("#run-status")).to_have_text(status.replace("_", " ").capitalize())
        check(name)
    page.goto("/runs?status=failed&status=completed&trigger=manual")
    check("runs")
    page.goto("/workflows/payment-reminders/history")
    check("history")
    page.goto("/account")
    check("account")
    page.goto("/workflows/no-such-workflow")  # the console error of its 404 is expected (see the page fixture)
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    check("not-found")

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, make_user("manager"))
    page.goto("/approvals")
    check("approvals-empty")
    waiting = start(app, "ledger-posting", make_user("operator"), {"since": recent_since()})
    wait_for(lambda: get_run(app, waiting).status == "waiting_for_approval", timeout=30, what="the run parked")
    page.goto("/approvals")
    check("approvals")
    page.goto(f"/runs/{waiting}")
    expect(page.get_by_role("button", name="Approve")).to_be_visible()
    check("run-approval-form")

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, make_user("viewer"))
    page.goto("/workflows/attendance-import")
    check("workflow-viewer")
    page.goto("/workflows/sandbox-health")
    check("workflow-automated-viewer")


def test_cookies_copied_before_sign_out_no_longer_sign_anyone_in(page, browser, live_server, make_user):
    """Someone who copied the cookies of a signed-in browser gets the sign-in page once its owner signs out."""
    from playwright.sync_api import expect

    page.goto("/login")
    page.fill("#email", make_user("operator"))
    page.fill("#password", PASSWORD)
    page.get_by_label("Keep me signed in").check()
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/workflows$"))
    copied = page.context.cookies()
    assert {c["name"] for c in copied} >= {"session", "remember_token"}

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()

    thief = browser.new_context(base_url=live_server)
    try:
        thief.add_cookies(copied)
        other = thief.new_page()
        other.goto("/workflows")
        expect(other).to_have_url(re.compile(r"/login"))
        expect(other.get_by_role("heading", name="Sign in")).to_be_visible()
    finally:
        thief.close()


def test_find_a_run_by_its_record_key_and_share_the_filtered_list(page, app, demo_workflows, make_user,
                                                                   worker_processes):
    """An operator types a record key, ticks a status, gets a URL to share, and removes a filter by its chip."""
    from playwright.sync_api import expect

    from tests.factories import issue_api_token

    email = make_user("operator")
    token = issue_api_token(app, email)
    wanted = app.test_client().post(
        "/api/v1/workflows/sandbox-health/runs", json={"record": {"key": "INV-2291"}},
        headers={"Authorization": f"Bearer {token}"}).get_json()["id"]
    app.test_client().post("/api/v1/workflows/sandbox-health/runs", json={"record": {"key": "INV-1000"}},
                           headers={"Authorization": f"Bearer {token}"})
    sign_in(page, email)
    page.goto("/runs")
    finished = page.locator("#runs-results section").filter(has=page.get_by_role("heading", name="Finished runs"))
    expect(finished.locator("tbody tr")).to_have_count(2, timeout=WORK_TIMEOUT_MS)
    mark_page(page)

    page.get_by_label("Key").fill("INV-2291")
    expect(page).to_have_url(re.compile(r"key=INV-2291"))
    expect(finished.locator("tbody tr")).to_have_count(1)
    expect(finished.get_by_role("link", name=f"#{wanted}")).to_be_visible()
    page.get_by_label("Completed").check()
    expect(page).to_have_url(re.compile(r"status=completed"))
    expect(page.get_by_role("link", name="Remove filter Key: INV-2291")).to_be_visible()
    assert_not_reloaded(page)
    shared = page.url

    other = page.context.new_page()  # the shared URL shows the same list
    other.goto(shared)
    expect(other.locator("#runs-results tbody tr").filter(has=other.get_by_role("link", name=f"#{wanted}"))).to_have_count(1)
    other.close()

    page.get_by_role("link", name="Remove filter Key: INV-2291").click()
    expect(page).not_to_have_url(re.compile(r"key="))
    expect(finished.locator("tbody tr")).to_have_count(2)
    assert_accessible(page, "runs-filtered")


def test_a_long_live_log_opens_at_its_end_loads_older_lines_and_follows_new_ones(page, app, demo_workflows, make_user):
    """The newest 200 lines first; Load older lines above them, twice; unchanged polls leave the page as it is;
    a new line and the run's end still show up (no reload)."""
    import sqlalchemy as sa
    from playwright.sync_api import expect

    from app.extensions import db
    from app.models import LogEntry, Run
    from app.timeutil import utcnow
    from tests.factories import make_run

    run_id = make_run(app, "attendance-import", "running", steps=1, lines=480)
    sign_in(page, make_user("operator"))
    page.goto(f"/runs/{run_id}")
    rows = page.locator("#log-lines tr[data-id]")
    expect(rows).to_have_count(200)
    expect(rows.first).to_contain_text("info line 281")
    expect(rows.last).to_contain_text("info line 480")
    mark_page(page)
    page.wait_for_timeout(2500)  # a few panel and tail polls that find nothing new
    expect(page.locator("#run-status")).to_have_text("Running")
    expect(rows).to_have_count(200)

    page.get_by_role("button", name="Load older lines").click()
    expect(rows).to_have_count(400)
    expect(rows.first).to_contain_text("info line 81")
    page.get_by_role("button", name="Load older lines").click()
    expect(rows).to_have_count(480)
    expect(rows.first).to_contain_text("info line 1")
    expect(page.get_by_role("button", name="Load older lines")).to_have_count(0)
    assert_accessible(page)

    with app.app_context():
        db.session.add(LogEntry.line(run_id, "info", "a brand new line"))
        db.session.commit()
    expect(rows.last).to_contain_text("a brand new line")
    with app.app_context():
        db.session.execute(sa.update(Run).where(Run.id == run_id).values(status="completed", finished_at=utcnow()))
        db.session.commit()
    expect(page.locator("#run-status")).to_have_text("Completed")
    expect(page.locator("#log-tail")).to_have_text("End of log.")
    expect(rows).to_have_count(481)
    assert_not_reloaded(page)


def test_replay_a_failed_run_with_an_edited_param_and_compare_the_two(page, demo_workflows, make_user,
                                                                      worker_processes):
    """A manager replays a failed Payment reminders run from its page with another mail template: the replay
    panel opens in place, a bad time is shown at its field without losing what was typed, the replay completes,
    and the compare page shows the changed parameter. Checked with axe, and at 390 px."""
    from playwright.sync_api import expect

    sign_in(page, make_user("manager"))
    source = start_run(page, "payment-reminders", lambda p: p.fill("#param-since", recent_since()))
    expect(page.locator("#run-status")).to_have_text("Failed", timeout=WORK_TIMEOUT_MS)
    mark_page(page)

    page.get_by_role("link", name="Replay", exact=True).click()
    panel = page.locator("#replay-panel")
    expect(panel.get_by_role("heading", name=f"Replay run #{source}")).to_be_focused()
    panel.get_by_role("link", name="Close").click()  # closes in place; opened again, it starts afresh
    expect(panel.get_by_role("heading")).to_have_count(0)
    page.get_by_role("link", name="Replay", exact=True).click()
    expect(panel.locator("#replay-version")).to_have_text("v1")
    expect(panel.locator("#param-template")).to_have_value("reminder-v2")
    assert_not_reloaded(page)

    panel.locator("#param-template").fill("reminder-v1")
    panel.get_by_label("At a date and time").check()
    panel.get_by_role("button", name="Replay run").click()
    expect(panel.locator(".field-error")).to_contain_text("Date and time is required")
    expect(panel.locator("#param-template")).to_have_value("reminder-v1")
    assert_not_reloaded(page)

    panel.get_by_label("Now").check()
    panel.get_by_role("button", name="Replay run").click()
    expect(page).to_have_url(re.compile(rf"/runs/(?!{source}$)\d+$"))
    replay_id = int(page.url.rsplit("/", 1)[1])
    assert replay_id != source
    expect(page.locator("#run-status")).to_have_text("Completed", timeout=WORK_TIMEOUT_MS)
    expect(page.locator("#replay-links")).to_contain_text(f"Replay of #{source}")

    page.get_by_role("link", name=f"Compare with run #{source}").click()
    expect(page).to_have_url(re.compile(rf"/runs/{source}/compare/{replay_id}$"))
    template = page.locator("#compare-params-table tr[data-param='template']")
    expect(template).to_have_class(re.compile(r"\bchanged\b"))
    expect(template.locator("mark")).to_have_text(['"reminder-v2"', '"reminder-v1"'])
    expect(page.locator("#compare-params-table tr[data-param='since']")).not_to_have_class(re.compile("changed"))
    send = page.locator("#compare-steps-table tr[data-step='send']")
    expect(send.locator(".badge")).to_have_text(["Failed", "Completed"])
    assert_accessible(page, "compare")

    page.set_viewport_size({"width": 390, "height": 900})

    def check(name):
        assert_accessible(page, name)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{name} scrolls sideways by {overflow} px at 390 px"

    page.goto(f"/runs/{source}/compare/{replay_id}")
    check("compare")
    page.goto(f"/runs/{source}")  # axe runs after the last htmx swap: it leaves markup a swap would trip over
    expect(page.locator("#replay-links")).to_contain_text(f"Replayed as #{replay_id}")
    page.get_by_role("link", name="Replay", exact=True).click()
    expect(page.locator("#replay-panel").get_by_role("heading", name=f"Replay run #{source}")).to_be_focused()
    check("replay-panel")
    page.goto(f"/runs/{source}/replay")
    check("replay-page")
    # Without htmx the replay form is a page of its own that posts and goes to the new run.
    page.get_by_role("button", name="Replay run").click()
    expect(page).to_have_url(re.compile(rf"/runs/(?!{source}$)(?!{replay_id}$)\d+$"))
    expect(page.locator("#replay-links")).to_contain_text(f"Replay of #{source}")


def test_the_accessibility_check_runs_axe_core_4_14_and_names_what_is_wrong(page):
    """The helper every page test uses really runs the vendored axe-core 4.14 and reports rule, impact and where."""
    page.set_content('<html lang="en"><head><title>t</title></head><body><main><h1>Broken</h1>'
                     '<img src="data:," id="no-alt"><p style="color:#999;background:#fff">faint</p></main></body></html>')
    assert page.evaluate("typeof window.axe") == "undefined"
    violations = axe_violations(page)
    assert page.evaluate("axe.version").startswith("4.14.")
    found = {v["id"]: v for v in violations}
    assert {"image-alt", "color-contrast"} <= set(found)
    assert found["image-alt"]["impact"] == "critical" and found["image-alt"]["nodes"][0]["target"] == "#no-alt"
    with pytest.raises(AssertionError) as failure:
        assert_accessible(page)
    message = str(failure.value)
    assert "image-alt (critical)" in message and "#no-alt" in message and "color-contrast (serious)" in message


def test_a_manager_approves_one_ledger_posting_and_rejects_another(page, app, demo_workflows, make_user,
                                                                   worker_processes):
    """An operator runs Ledger posting and sees who must approve it; a manager finds both runs under Waiting for me,
    approves one on its page (it goes on and completes, live) and rejects the other."""
    from playwright.sync_api import expect

    from tests.factories import get_run, start, wait_for

    operator, manager = make_user("operator"), make_user("manager")
    sign_in(page, operator)
    first = start_run(page, "ledger-posting", lambda p: p.fill("#param-since", recent_since()))
    expect(page.locator("#run-status")).to_have_text("Waiting for approval", timeout=WORK_TIMEOUT_MS)
    asked = step(page, "approve")
    expect(asked.locator(".badge")).to_have_text("Waiting for approval")
    expect(asked).to_contain_text("to the ledger?")
    expect(asked).to_contain_text("Only managers or admins may approve or reject this step.")
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    assert_accessible(page, "run-waiting-for-approval")
    second = start(app, "ledger-posting", operator, {"since": recent_since()})
    wait_for(lambda: get_run(app, second).status == "waiting_for_approval", timeout=30, what="the second run parked")
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, manager)
    page.get_by_role("link", name="Waiting for me 2").click()
    expect(page.get_by_role("heading", name="Waiting for me")).to_be_visible()
    expect(page.locator(".approval-list > li")).to_have_count(2)
    assert_accessible(page, "approvals")
    page.set_viewport_size({"width": 390, "height": 900})
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 1
    assert_accessible(page)
    page.set_viewport_size({"width": 1280, "height": 1000})

    page.get_by_role("link", name=f"Run #{first} · Ledger posting").click()
    mark_page(page)
    asked = step(page, "approve")
    asked.get_by_label("Comment").fill("Totals checked against the bank")
    asked.get_by_role("button", name="Approve").click()
    expect(page.locator("#run-panel")).to_contain_text("Approved: the run goes on from the next step.")
    expect(page.locator("#run-status")).to_have_text("Completed", timeout=WORK_TIMEOUT_MS)
    expect(asked.locator(".badge")).to_have_text("Completed")
    expect(asked).to_contain_text("Approved by Manager")
    expect(asked).to_contain_text("Totals checked against the bank")
    expect(step(page, "post").locator(".badge")).to_have_text("Completed")
    expect(page.locator("#log-lines")).to_contain_text("approved by manager@test.example", timeout=WORK_TIMEOUT_MS)
    assert_not_reloaded(page)
    assert_accessible(page, "run-approved")

    page.goto(f"/runs/{second}")
    mark_page(page)
    page.get_by_role("button", name="Reject").click()
    expect(page.locator("#run-status")).to_have_text("Rejected")
    expect(step(page, "approve").locator(".badge")).to_have_text("Rejected")
    expect(step(page, "approve")).to_contain_text("Rejected by Manager")
    expect(step(page, "post")).to_have_count(0)
    assert_not_reloaded(page)
    assert_accessible(page, "run-rejected")
    page.goto("/approvals")
    expect(page.get_by_text("Nothing is waiting for your decision.")).to_be_visible()
    expect(page.locator("#nav-approvals")).to_have_text("Waiting for me")
