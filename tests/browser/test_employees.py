"""A team lead deactivates an employee: the row changes in place, the registrations stay."""

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_deactivate_updates_the_row_and_keeps_the_data_source_total(page, live_server, log_in, world):
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    log_in("lead@acme.test")
    page.goto(f"{live_server}/data-sources/{world.calls}")
    expect(page.get_by_text("30 registrations")).to_be_visible()

    page.get_by_role("link", name="Employees").click()
    expect(page.get_by_text("Employees are never deleted")).to_be_visible()
    ann = page.get_by_role("row", name="Ann Able")
    expect(ann.get_by_role("cell", name="Active", exact=True)).to_be_visible()
    expect(ann.get_by_role("cell", name="50", exact=True)).to_be_visible()
    page.evaluate("window.__marker = 'same page'")

    ann.get_by_role("button", name="Deactivate Ann Able").click()
    expect(ann.get_by_role("button", name="Reactivate Ann Able")).to_be_visible()
    expect(ann).to_contain_text("Deactivated since")
    expect(ann.get_by_role("cell", name="50", exact=True)).to_be_visible()
    expect(ann.get_by_role("button", name="Reactivate Ann Able")).to_be_focused()
    assert page.evaluate("window.__marker") == "same page"

    page.get_by_role("link", name="Data sources").click()
    page.get_by_role("link", name="Calls").click()
    expect(page.get_by_text("30 registrations")).to_be_visible()
    expect(page.get_by_role("row", name="C-28").get_by_text("deactivated")).to_be_visible()
    assert errors == []
