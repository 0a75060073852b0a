"""A person logs in, opens a data source, pages through it and filters it."""

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_lead_logs_in_and_opens_a_data_source(page, live_server, log_in, world):
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    log_in("lead@acme.test")
    expect(page.get_by_role("link", name="Globex Deals")).to_have_count(0)
    page.get_by_role("link", name="Calls").click()
    expect(page.get_by_role("heading", name="Calls")).to_be_visible()
    expect(page.get_by_text("30 registrations")).to_be_visible()
    expect(page.get_by_role("cell", name="C-29", exact=True)).to_be_visible()
    page.get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", name="Fields")).to_be_visible()
    assert errors == []


def test_paging_and_filtering_swap_the_table_without_a_reload(app, page, live_server, log_in, world):
    app.config["PAGE_SIZE"] = 10
    log_in("lead@acme.test")
    page.goto(f"{live_server}/data-sources/{world.calls}")
    page.evaluate("window.__marker = 'same page'")
    page.get_by_role("link", name="Older →").click()
    expect(page.get_by_role("cell", name="C-19", exact=True)).to_be_visible()
    expect(page).to_have_url(re.compile(r"after="))
    page.get_by_label("Employee").select_option(label="Ben Baker (deactivated)")
    expect(page.get_by_role("cell", name="C-29", exact=True)).to_be_visible()
    expect(page.get_by_role("cell", name="C-28", exact=True)).to_have_count(0)
    assert page.evaluate("window.__marker") == "same page"
