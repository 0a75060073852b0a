"""A person looks up which integration deletes automatically, narrowing the table as they type."""

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_typing_in_search_narrows_the_table_without_a_reload(page, live_server, log_in, world):
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    log_in("viewer@acme.test")
    page.get_by_role("link", name="Automatic deletion").click()
    expect(page.get_by_role("heading", name="Automatic deletion")).to_be_visible()
    rows = page.locator("#capability-rows tr")
    expect(rows).to_have_count(4)
    page.evaluate("window.__marker = 'same page'")

    page.get_by_label("Search").press_sequentially("pipedrive activ", delay=20)
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Pipedrive")
    expect(rows.first).to_contain_text("Activities")
    expect(rows.first.get_by_role("cell", name="Not supported", exact=True)).to_be_visible()
    expect(page).to_have_url(re.compile(r"q=pipedrive(\+|%20)activ"))

    page.get_by_label("Search").fill("pipedrive")
    expect(rows).to_have_count(2)
    deals = rows.filter(has=page.get_by_role("cell", name="Deals", exact=True))
    expect(deals.get_by_role("cell", name="Supported", exact=True)).to_be_visible()
    expect(deals).to_contain_text("Webhook push from the source")
    assert page.evaluate("window.__marker") == "same page"
    assert errors == []


def test_a_data_source_links_to_its_line_of_the_table(page, live_server, log_in, world):
    log_in("lead@acme.test")
    page.goto(f"{live_server}/data-sources/{world.activities}")
    expect(page.get_by_text("Automatic registration deletion: Not supported")).to_be_visible()
    page.get_by_role("link", name="Which integrations delete automatically?").click()
    expect(page.get_by_label("Search")).to_have_value("Pipedrive")
    expect(page.locator("#capability-rows tr")).to_have_count(2)
