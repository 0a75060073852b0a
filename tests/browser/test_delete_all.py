"""A team lead deletes every registration from the settings page, watches it finish, and restores."""

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_delete_all_from_settings_then_restore(page, live_server, log_in, world, worker_process):
    log_in("lead@acme.test")
    page.goto(f"{live_server}/data-sources/{world.calls}/settings")
    page.get_by_role("button", name="More delete options").click()
    page.get_by_role("button", name="Delete all registrations").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("30 registrations")
    confirm = dialog.get_by_role("button", name="Delete all registrations")
    expect(confirm).to_be_disabled()
    dialog.get_by_label("Type the data source name to confirm").fill("Call")
    expect(confirm).to_be_disabled()
    dialog.get_by_label("Type the data source name to confirm").fill("Calls")
    expect(confirm).to_be_enabled()
    confirm.click()
    expect(page.locator("#delete-all-status progress")).to_be_visible()
    expect(page.locator("#delete-all-status .job-status")).to_have_text("finished", timeout=20_000)
    page.get_by_role("link", name="Registrations", exact=True).click()
    expect(page.get_by_text("0 registrations")).to_be_visible()
    page.get_by_role("link", name="Settings").click()
    expect(page.get_by_role("cell", name="Amount", exact=True)).to_be_visible()
    page.get_by_role("navigation", name="Data source").get_by_role("link", name="Deleted registrations").click()
    page.get_by_role("button", name="Restore 30 registrations").click()
    expect(page.locator(".job-status")).to_have_text("finished", timeout=20_000)
    page.goto(f"{live_server}/data-sources/{world.calls}")
    expect(page.get_by_text("30 registrations")).to_be_visible()
