"""Browser tests of the workflow lifecycle pages: the Drafts switch, a version's diff, restore refused then
accepted, clone with a bad then a good name, disable. Each page is checked with axe-core and for sideways
scrolling at desktop width and at 390 px."""
import re

import pytest

from tests.factories import make_run
from tests.test_browser import assert_accessible, browser, page, sign_in  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser
WIDTHS = [1280, 390]


def check(page, name: str) -> None:
    """No axe-core violation, and nothing wider than the screen."""
    assert_accessible(page, name)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"{name} scrolls sideways by {overflow} px at {page.viewport_size['width']} px"


def check_at_both_widths(page, name: str) -> None:
    """`check` at 390 px and at desktop width, leaving the page at desktop width."""
    for width in (390, 1280):
        page.set_viewport_size({"width": width, "height": 900})
        check(page, name)


def admin(page, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, "admin@example.com")


@pytest.fixture
def demo_password(app, demo_workflows):
    """The demo accounts, with the tests' password (sign_in types it)."""
    from app.extensions import db
    from app.services.users import find_user, set_password
    from tests.conftest import PASSWORD

    with app.app_context():
        for email in ("admin@example.com", "operator@example.com"):
            set_password(db.session, find_user(db.session, email), PASSWORD)
        db.session.commit()


@pytest.mark.parametrize("width", WIDTHS)
def test_admins_switch_the_list_to_drafts_and_back(page, demo_password, width):
    from playwright.sync_api import expect

    admin(page, width)
    switch = page.get_by_role("navigation", name="Which workflows")
    expect(switch.get_by_role("link", name="Published")).to_have_attribute("aria-current", "page")
    rows = page.locator("#workflow-table tbody tr")
    expect(rows.filter(has_text="Vendor onboarding")).to_have_count(0)
    check(page, "workflows-published-admin")
    switch.get_by_role("link", name="Drafts").click()
    expect(page).to_have_url(re.compile(r"/workflows\?state=drafts$"))
    expect(rows).to_have_count(1)
    draft = rows.first
    expect(draft).to_contain_text("Vendor onboarding")
    expect(draft.locator(".badge-draft")).to_have_text("Draft")
    expect(draft.get_by_role("link", name="Vendor onboarding", exact=True)).to_have_attribute(
        "href", "/workflows/vendor-onboarding/edit")
    expect(draft.get_by_role("link", name="Edit Vendor onboarding")).to_be_visible()
    check(page, "workflows-drafts")
    page.get_by_role("searchbox", name="Search workflows").fill("vendor")
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(r"state=drafts"))  # the search stays in the drafts
    expect(rows).to_have_count(1)
    switch.get_by_role("link", name="Archived").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("No archived workflows.")
    check(page, "workflows-archived")
    switch.get_by_role("link", name="Published").click()
    expect(rows.filter(has_text="Invoice sync")).to_have_count(1)
    page.goto("/workflows/vendor-onboarding")  # a draft's own page: not published, cannot run, Publish v1
    expect(page.locator("#live-version")).to_have_text("Not published")
    expect(page.get_by_role("button", name="Publish v1")).to_be_visible()
    expect(page.get_by_role("button", name="Start run")).to_have_count(0)
    check(page, "workflow-draft")


@pytest.mark.parametrize("width", WIDTHS)
def test_a_version_s_diff_against_the_one_before_and_the_live_one(page, demo_password, width):
    from playwright.sync_api import expect

    admin(page, width)
    page.goto("/workflows/invoice-sync")
    expect(page.locator("#live-version")).to_have_text("v3 is live")
    check(page, "workflow-admin")
    page.get_by_role("navigation", name="Invoice sync").get_by_role("link", name="Versions").click()
    table = page.locator("#versions-table")
    expect(table.locator("tbody tr")).to_have_count(3)
    expect(table.locator("tr[data-version='3'] .badge-published")).to_have_text("Live")
    expect(table.locator("tr[data-version='2']")).to_contain_text("Post the invoices to the ledger")
    check(page, "versions")
    table.get_by_role("link", name="Changes in v2").click()
    expect(page.get_by_role("heading", name="v2 compared with v1")).to_be_visible()
    expect(page.locator("#changed-fields")).to_contain_text("steps.post")
    expect(page.locator("#version-diff .diff-add").first).to_be_visible()
    check(page, "version-diff")
    page.get_by_role("link", name="The live version (v3)").click()
    expect(page.get_by_role("heading", name="v2 compared with v3 (live)")).to_be_visible()
    expect(page.locator("#changed-fields")).to_contain_text("steps.pause")
    page.get_by_role("navigation", name="Invoice sync").get_by_role("link", name="Audit").click()
    expect(page.locator("#audit-table tbody tr").first).to_contain_text("admin@example.com")
    check(page, "audit")


def test_restore_is_refused_while_a_run_waits_then_accepted(page, app, demo_password):
    from playwright.sync_api import expect

    from app.extensions import db
    from app.models import Run

    waiting = make_run(app, "invoice-sync", "waiting", steps=2)
    admin(page, 1280)
    page.goto("/workflows/invoice-sync/versions")
    expect(page.locator("#restore-refusal")).to_contain_text("1 run is pending, running or waiting")
    page.get_by_role("link", name="Restore v1").click()
    refusal = page.locator("#restore-panel [role=alert]")
    expect(refusal).to_contain_text("Restore is refused while runs are in flight")
    expect(page.get_by_role("button", name="Restore v1")).to_have_count(0)
    check_at_both_widths(page, "restore-refused")
    with app.app_context():  # the waiting run is cancelled (its page has its own tests)
        db.session.get(Run, waiting).status = "cancelled"
        db.session.commit()
    page.reload()
    expect(page.locator("#restore-panel")).to_contain_text("goes live at once")
    check_at_both_widths(page, "restore-confirm")
    page.get_by_role("button", name="Restore v1").click()
    expect(page).to_have_url(re.compile(r"/workflows/invoice-sync/versions$"))
    expect(page.locator(".flash-success")).to_have_text("Restored v1 as v4; it is the working copy and is live.")
    row = page.locator("#versions-table tr[data-version='4']")
    expect(row).to_contain_text("Restored from v1")
    expect(row.locator(".badge-published")).to_have_text("Live")
    expect(page.locator("#live-version")).to_have_text("v4 is live")


@pytest.mark.parametrize("width", WIDTHS)
def test_clone_with_a_bad_then_a_good_name(page, demo_password, width):
    from playwright.sync_api import expect

    admin(page, width)
    page.goto("/workflows/invoice-sync")
    page.locator(".admin-actions").get_by_role("link", name="Clone").click()
    name = page.get_by_role("textbox", name="Name")
    expect(name).to_have_value("Copy of Invoice sync")
    check(page, "clone")
    too_long = "Invoice sync for the northern sites and the southern ones"
    name.fill(too_long)
    page.get_by_role("button", name="Clone as draft").click()
    field = page.locator(".field", has=name)
    expect(field).to_have_class(re.compile(r"\bhas-error\b"))
    expect(field.locator(".field-error")).to_have_text(f"Name must be at most 50 characters (it has {len(too_long)})")
    expect(name).to_have_value(too_long)
    expect(name).to_have_attribute("aria-invalid", "true")
    check(page, "clone-error")
    name.fill("Invoice sync north")
    page.get_by_role("button", name="Clone as draft").click()
    expect(page).to_have_url(re.compile(r"/workflows/invoice-sync-north$"))
    expect(page.locator(".flash-success")).to_contain_text("Cloned as the draft Invoice sync north")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Draft")
    page.get_by_role("link", name="All workflows").click()
    page.get_by_role("navigation", name="Which workflows").get_by_role("link", name="Drafts").click()
    expect(page.locator("#workflow-table tbody tr").filter(has_text="Invoice sync north")).to_have_count(1)


def test_disable_stops_runs_and_hides_the_workflow_from_others(page, browser, live_server, demo_password):  # noqa: F811
    from playwright.sync_api import expect

    admin(page, 1280)
    page.goto("/workflows/payment-reminders")
    expect(page.get_by_role("button", name="Start run")).to_be_visible()
    page.get_by_role("button", name="Disable").click()
    expect(page.locator(".flash-success")).to_contain_text("takes no new runs; runs in progress go on")
    expect(page.get_by_role("heading", level=1).locator(".badge-disabled")).to_have_text("Disabled")
    expect(page.get_by_role("button", name="Start run")).to_have_count(0)
    expect(page.get_by_role("button", name="Enable")).to_be_visible()
    check_at_both_widths(page, "workflow-disabled")

    other = browser.new_context(base_url=live_server)
    try:
        operator = other.new_page()
        sign_in(operator, "operator@example.com")
        expect(operator.locator("#workflow-table tbody tr").filter(has_text="Payment reminders")).to_have_count(0)
        expect(operator.locator("#workflow-table tbody tr").filter(has_text="Invoice sync")).to_have_count(1)
        response = operator.goto("/workflows/payment-reminders")
        assert response.status == 404
    finally:
        other.close()
