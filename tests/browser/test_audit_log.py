"""A team lead deletes registrations, finds the deletion in the audit log, and restores it from there."""

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_delete_then_restore_from_the_audit_log(page, live_server, log_in, world):
    log_in("lead@acme.test")
    page.goto(f"{live_server}/data-sources/{world.calls}")
    for external_id in ("C-29", "C-28"):
        page.get_by_role("checkbox", name=f"Select registration {external_id}").check()
    page.get_by_role("button", name="Delete", exact=True).click()
    page.get_by_role("dialog").get_by_role("button", name="Delete 2 registrations").click()
    expect(page.get_by_text("28 registrations")).to_be_visible()

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit log").click()
    row = page.get_by_role("row").filter(has_text="Deleted registrations")
    expect(row).to_contain_text("lead@acme.test")
    expect(row).to_contain_text("Calls")
    page.get_by_label("Data source").select_option(label="Deals")  # htmx swaps the table: nothing happened there
    expect(page.get_by_text("Nothing has happened to Deals yet.")).to_be_visible()
    page.get_by_label("Data source").select_option(label="Calls")
    page.get_by_role("button", name="Restore 2 registrations deleted").click()
    expect(page.get_by_text("Restored 2 registrations.")).to_be_visible()
    page.goto(f"{live_server}/data-sources/{world.calls}")
    expect(page.get_by_text("30 registrations")).to_be_visible()
