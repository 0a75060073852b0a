"""A team lead ticks registrations, confirms in the dialog, sees them go, and undoes it."""

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_tick_three_delete_and_undo(page, live_server, log_in, world):
    log_in("lead@acme.test")
    page.goto(f"{live_server}/data-sources/{world.calls}")
    expect(page.get_by_text("30 registrations")).to_be_visible()
    delete = page.get_by_role("button", name="Delete", exact=True)
    expect(delete).to_be_disabled()
    for external_id in ("C-29", "C-28", "C-27"):
        page.get_by_role("checkbox", name=f"Select registration {external_id}").check()
    expect(page.get_by_text("3 selected")).to_be_visible()
    expect(delete).to_be_enabled()
    delete.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("2025-01-28 to 2025-01-30")
    dialog.get_by_role("button", name="Delete 3 registrations").click()
    expect(page.get_by_text("27 registrations")).to_be_visible()
    expect(page.get_by_role("cell", name="C-29", exact=True)).to_have_count(0)
    expect(page.get_by_role("dialog")).to_have_count(0)
    page.get_by_role("button", name="Undo").click()
    expect(page.get_by_text("30 registrations")).to_be_visible()
    expect(page.get_by_text("Restored 3 registrations.")).to_be_visible()
    expect(page.get_by_role("cell", name="C-29", exact=True)).to_be_visible()


def test_select_all_on_page_then_all_matching(app, page, live_server, log_in, world):
    app.config["PAGE_SIZE"] = 10
    log_in("lead@acme.test")
    page.goto(f"{live_server}/data-sources/{world.calls}")
    page.get_by_role("checkbox", name="Select all on this page").check()
    expect(page.get_by_text("10 selected")).to_be_visible()
    page.get_by_role("button", name="Select all 30 matching").click()
    expect(page.get_by_text("All 30 matching selected")).to_be_visible()
    page.get_by_role("link", name="Older →").click()
    expect(page.get_by_role("checkbox", name="Select registration C-19")).to_be_checked()
    page.get_by_role("button", name="Clear selection").click()
    expect(page.get_by_text("0 selected")).to_be_visible()


def test_the_warning_for_activities_names_pipedrive(page, live_server, log_in, world):
    log_in("lead@acme.test")
    page.goto(f"{live_server}/data-sources/{world.activities}")
    page.get_by_role("checkbox", name="Select registration A-4").check()
    page.get_by_role("button", name="Delete", exact=True).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Pipedrive will import them again.")
    dialog.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
