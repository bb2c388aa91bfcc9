"""The workflow editor in headless Chromium: an admin builds a workflow from nothing (parameters, an HTTP step, a
condition, a log step), saves twice and publishes; a manager changes its queue and max runtime but not its steps.
Checked with axe at 1280 and 390 px, and driven partly by keyboard."""
import re

import pytest

from tests.test_browser import assert_accessible as _assert_accessible
from tests.test_browser import browser, page, sign_in  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser


def assert_accessible(page, name: str) -> None:
    """axe finds nothing, with the pointer off the page (a button the pointer rests on is mid-way through its hover
    colours, which axe would measure). axe leaves an empty `style` attribute on the inputs it measured; htmx would
    copy it onto the same input in the next answer, which the CSP refuses, so it goes."""
    page.mouse.move(0, 0)
    page.wait_for_timeout(200)
    _assert_accessible(page, name)
    page.evaluate("document.querySelectorAll('[style=\"\"]').forEach(e => e.removeAttribute('style'))")


def fits(page) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"{page.url} scrolls sideways by {overflow} px"


def idle(page) -> None:
    """Wait until htmx has answered, swapped and settled (it wires up new content as it settles: a key pressed on a
    button before that would post the form without htmx)."""
    from playwright.sync_api import expect

    expect(page.locator(".htmx-request, .htmx-swapping, .htmx-settling")).to_have_count(0)


def nav(page, name: str):
    """A link of the editor's side list."""
    return page.locator("#editor-nav").get_by_role("link", name=name, exact=True)


def open_section(page, name: str, title: str | None = None):
    from playwright.sync_api import expect

    nav(page, name).click()
    idle(page)  # answered (the section may be this one already)
    expect(page.locator("#editor-section-title")).to_contain_text(title or name)


def add_step(page, label: str, fields: dict, selects: dict | None = None):
    """Add a step of the type `label` from the picker and apply its form."""
    from playwright.sync_api import expect

    open_section(page, "Steps")
    page.get_by_label("Add a step of type").select_option(label=label)
    page.get_by_role("button", name="Add step").click()
    idle(page)
    expect(page.locator("#step-apply")).to_be_visible()
    for selector, value in fields.items():
        page.fill(selector, value)
    for selector, value in (selects or {}).items():
        page.select_option(selector, value)
    page.locator("#step-apply").click()
    idle(page)
    expect(page.locator("#editor-section .flash-success")).to_contain_text("Step applied")


def test_a_name_typed_before_the_editor_script_ran_still_gets_its_key(page, make_user):
    """The key follows the name from the first letter, even when the name was typed (or restored by the browser)
    while the page's script was still on its way: here it is held until the name is in."""
    from playwright.sync_api import expect

    sign_in(page, make_user("admin"))
    held = []
    page.route("**/js/editor.js", lambda route: held.append(route))
    page.goto("/workflows/new", wait_until="commit")
    page.locator("#new-name").press_sequentially("Invoice check")
    expect(page.get_by_label("Key (job name)")).to_have_value("")
    assert held, "the editor's script was asked for"
    held[0].continue_()
    expect(page.get_by_label("Key (job name)")).to_have_value("invoice-check")
    page.locator("#new-name").press_sequentially(" two")
    expect(page.get_by_label("Key (job name)")).to_have_value("invoice-check-two")


def test_admin_builds_saves_twice_and_publishes_a_workflow(page, demo_workflows, make_user):
    from playwright.sync_api import expect

    sign_in(page, make_user("admin"))
    page.get_by_role("link", name="New workflow").click()
    page.locator("#new-name").press_sequentially("Invoice check")
    expect(page.get_by_label("Key (job name)")).to_have_value("invoice-check")  # follows the name as typed
    assert_accessible(page, "editor-new")
    page.get_by_role("button", name="Create draft").click()
    expect(page).to_have_url(re.compile(r"/workflows/invoice-check/edit$"))
    expect(page.locator("#editor-summary")).to_contain_text("v1")
    page.evaluate("window.__noReload = 1")
    assert_accessible(page, "editor-configuration")

    # Parameters: a date and a bounded whole number.
    open_section(page, "Parameters")
    page.get_by_role("button", name="Add a parameter").click()
    idle(page)
    page.fill("#param-0-name", "since")
    page.select_option("#param-0-type", "date")
    idle(page)  # the form comes back with the date's fields
    page.check("#param-0-required")
    page.locator("#param-0-apply").click()
    idle(page)
    expect(page.locator("#param-0-title")).to_contain_text("since")
    page.get_by_role("button", name="Add a parameter").click()
    idle(page)
    page.fill("#param-1-name", "limit")
    page.select_option("#param-1-type", "integer")
    expect(page.locator("#param-1-min")).to_be_visible()  # a number's bounds appear with its type
    expect(page.locator("#param-1-name")).to_have_value("limit")
    page.fill("#param-1-min", "1")
    page.fill("#param-1-default", "twenty")
    page.locator("#param-1-apply").click()
    idle(page)
    expect(page.locator("#msg-param-1-default")).to_have_text("must be a whole number")
    expect(page.locator("#param-1-default")).to_have_value("twenty")  # what was typed stays
    expect(page.locator("#param-1-min")).to_have_value("1")
    page.fill("#param-1-default", "20")
    page.locator("#param-1-apply").click()
    idle(page)
    expect(page.locator("#editor-section .flash-success")).to_contain_text("Parameter 2 applied")
    assert_accessible(page, "editor-parameters")

    # An HTTP step; its URL's placeholder is checked as it is typed.
    open_section(page, "Steps")
    page.get_by_label("Add a step of type").select_option(label="HTTP request")
    page.get_by_role("button", name="Add step").click()
    idle(page)
    page.fill("#step-name", "Fetch invoices")
    page.fill("#step-key", "fetch")
    page.locator("#step-url").press_sequentially("{{ vars.sandbox_url }}/invoices?since={{ params.snice }}")
    expect(page.locator("#msg-step-url")).to_contain_text("no parameter named 'snice'")
    page.fill("#step-url", "{{ vars.sandbox_url }}/invoices?since={{ params.since }}&limit={{ params.limit }}")
    page.locator("#step-url").press("End")
    expect(page.locator("#msg-step-url")).to_have_text("")
    page.locator("#step-apply").click()
    idle(page)
    expect(page.locator("#editor-section .flash-success")).to_contain_text("Step applied")
    expect(page.locator("#editor-nav")).to_contain_text("Fetch invoices")
    assert_accessible(page, "editor-step-http")

    add_step(page, "Log", {"#step-name": "Report", "#step-key": "report",
                           "#step-message": "Fetched {{ steps.fetch.output.json | length }} invoices"})
    add_step(page, "Condition", {"#step-name": "Any invoices?", "#step-key": "any",
                                 "#step-expression": "steps.fetch.output.json | length > 0"},
             {"#step-then": "report", "#step-else": "end"})
    assert_accessible(page, "editor-step-condition")

    # Reorder by keyboard: the condition goes above the log step; then the starter step goes.
    open_section(page, "Steps")
    page.locator("#move-up-any").focus()
    page.keyboard.press("Enter")
    expect(page.locator(".editor-steps > li h3 a")).to_have_text(["Start", "Fetch invoices", "Any invoices?", "Report"])
    page.locator("#step-item-start summary").click()
    expect(page.locator("#step-item-start .confirm-body")).to_contain_text("Remove the step Start?")
    assert_accessible(page, "editor-remove-confirm")
    page.get_by_role("button", name="Remove step Start").click()
    idle(page)
    expect(page.locator(".editor-steps > li h3 a")).to_have_text(["Fetch invoices", "Any invoices?", "Report"])
    expect(page.locator("#editor-unsaved")).to_have_text("Unsaved changes")
    assert_accessible(page, "editor-steps")

    # Save twice, then publish.
    open_section(page, "Review and publish")
    expect(page.locator("#review-problems")).to_contain_text("None")
    expect(page.locator("#review-summary")).not_to_have_value("")  # prefilled from what changed
    page.fill("#review-summary", "First build")
    page.locator("#save-version").click()
    idle(page)
    expect(page.locator("#editor-section .flash-success")).to_have_text("Saved as v2.")
    expect(page.locator("#editor-unsaved")).to_have_text("Saved")
    page.locator("#editor-nav .editor-nav-steps a", has_text="Report").click()
    idle(page)
    page.fill("#step-message", "Fetched {{ steps.fetch.output.json | length }} invoices since {{ params.since }}")
    page.locator("#step-apply").click()
    idle(page)
    expect(page.locator("#editor-unsaved")).to_have_text("Unsaved changes")
    open_section(page, "Review and publish")
    expect(page.locator("pre.diff")).to_contain_text("since {{ params.since }}")
    page.locator("#save-version").click()
    idle(page)
    expect(page.locator("#editor-section .flash-success")).to_have_text("Saved as v3.")
    page.locator("#publish-version").click()
    idle(page)
    expect(page.locator("#editor-section .flash-success")).to_contain_text("Published v3")
    expect(page.locator("#editor-header .badge-published")).to_have_text("Published v3")
    expect(page.locator("#editor-summary")).to_contain_text("Live")
    assert_accessible(page, "editor-review")
    assert page.evaluate("window.__noReload") == 1, "the editor reloaded the page"

    open_section(page, "JSON")
    assert_accessible(page, "editor-json")
    page.goto("/workflows/invoice-check")
    expect(page.get_by_role("heading", name=re.compile("Invoice check"))).to_be_visible()
    expect(page.locator(".badge-published")).to_contain_text("v3")


def test_leaving_with_typed_changes_that_are_not_applied_asks_first(page, demo_workflows, make_user):
    from playwright.sync_api import expect

    sign_in(page, make_user("admin"))
    page.goto("/workflows/invoice-sync/edit")
    page.fill("#configuration-name", "Invoice sync (typed, not applied)")
    asked = []

    def answer(dialog):
        asked.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", answer)
    nav(page, "Parameters").click()
    idle(page)
    expect(page.locator("#editor-section-title")).to_have_text("Configuration")
    expect(page.locator("#configuration-name")).to_have_value("Invoice sync (typed, not applied)")
    assert asked and "not applied" in asked[0]

    # Leaving the page itself (a link, not a section) asks through the browser's own beforeunload prompt.
    kinds = []
    page.remove_listener("dialog", answer)
    page.on("dialog", lambda dialog: (kinds.append(dialog.type), dialog.dismiss()))
    page.get_by_role("link", name="Workflow page").click()
    expect(page.locator("#configuration-name")).to_have_value("Invoice sync (typed, not applied)")
    assert kinds == ["beforeunload"]
    assert re.search(r"/workflows/invoice-sync/edit$", page.url)


@pytest.mark.parametrize("width", [1280, 390])
def test_manager_changes_queue_and_max_runtime_but_not_steps(page, demo_workflows, make_user, width):
    from playwright.sync_api import expect

    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, make_user("manager"))
    page.goto("/workflows/invoice-sync")
    page.get_by_role("link", name="Edit", exact=True).click()
    expect(page).to_have_url(re.compile(r"/workflows/invoice-sync/edit\?section=settings$"))
    expect(page.locator("#editor-section-title")).to_have_text("Settings")
    fits(page)
    assert_accessible(page, "editor-manager")
    side = page.locator("#editor-side-list")
    if width == 390:  # the side list starts closed above the content; it opens by keyboard
        expect(nav(page, "Settings")).to_be_hidden()
        side.locator("summary").focus()
        page.keyboard.press("Enter")
    open_section(page, "Settings")
    page.fill("#settings-queue", "site-a")
    page.fill("#settings-max_runtime_seconds", "600")
    page.get_by_role("button", name="Save settings").click()
    idle(page)
    expect(page.locator("#editor-section .flash-success")).to_contain_text("Settings saved")
    expect(page.locator("#settings-queue")).to_have_value("site-a")
    fits(page)
    assert_accessible(page, "editor-manager-settings")

    page.locator("#editor-nav .editor-nav-steps a", has_text="Fetch invoices").click()
    idle(page)
    expect(page.locator("#editor-section-title")).to_contain_text("Fetch invoices")
    expect(page.locator("#step-apply")).to_have_count(0)
    expect(page.locator("#editor-section pre.json")).to_contain_text("invoices?since=")
    open_section(page, "Steps")
    expect(page.get_by_role("button", name="Add step")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("^Move"))).to_have_count(0)
    fits(page)
    assert_accessible(page, "editor-manager-steps")


def test_the_editor_works_by_keyboard_alone(page, demo_workflows, make_user):
    """Tab to a section, add a step from the picker, fill and apply it, and remove it: with keys only, and the
    focus never lost after a change."""
    from playwright.sync_api import expect

    sign_in(page, make_user("admin"))
    page.goto("/workflows/vendor-onboarding/edit")
    steps_link = nav(page, "Steps")
    steps_link.focus()
    page.keyboard.press("Enter")
    idle(page)
    title = page.locator("#editor-section-title")
    expect(title).to_have_text("Steps")
    expect(title).to_be_focused()
    page.locator("#add-step-type").focus()
    page.keyboard.press("End")  # the last type in the picker: Wait
    expect(page.locator("#add-step-type")).to_have_value("wait")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Add step")).to_be_focused()
    page.keyboard.press("Enter")
    idle(page)
    expect(title).to_contain_text("New wait")
    page.locator("#step-seconds").focus()
    page.keyboard.press("Control+A")
    page.keyboard.type("90")
    page.locator("#step-apply").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#editor-section .flash-success")).to_contain_text("Step applied")
    expect(page.locator("#step-seconds")).to_have_value("90")
    expect(page.locator("#step-apply")).to_be_focused()  # the same button, in the answer
    nav(page, "Steps").focus()
    page.keyboard.press("Enter")
    idle(page)
    page.locator("#step-item-wait_1 summary").focus()
    page.keyboard.press("Enter")  # opens the confirmation
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Remove step New wait")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator(".editor-steps > li")).to_have_count(2)
    expect(title).to_be_focused()  # its button went with the step; the focus goes to the section's title
