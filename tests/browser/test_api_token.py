"""A team lead creates an API token in a manual data source's settings, a program sends registrations
with it over real HTTP, and they are on the data source's page."""

import httpx
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_create_a_token_send_registrations_and_see_them(page, live_server, log_in, world):
    log_in("lead@acme.test")
    page.goto(f"{live_server}/data-sources/{world.calls}/settings")
    page.get_by_role("button", name="Create an API token").click()
    expect(page.get_by_role("heading", name="Your new API token")).to_be_visible()
    token = page.get_by_role("textbox", name="Token").input_value()
    assert token.startswith("dsp_")
    expect(page.locator("pre.example")).to_contain_text(f"/api/v1/data-sources/{world.calls}/registrations")

    response = httpx.post(f"{live_server}/api/v1/data-sources/{world.calls}/registrations",
                          headers={"Authorization": f"Bearer {token}"},
                          json={"registrations": [{"external_id": "API-7", "date": "2025-04-01",
                                                   "employee_email": "ann@acme.test", "values": {"amount": 77}}]})
    assert response.status_code == 200 and response.json()["new"] == 1

    page.get_by_role("link", name="Back to the settings").click()
    expect(page.get_by_role("cell", name=f"{token[:12]}…")).to_be_visible()
    expect(page.get_by_text(token)).to_have_count(0)  # never shown again
    page.get_by_role("link", name="Registrations", exact=True).click()
    expect(page.get_by_text("31 registrations")).to_be_visible()
    expect(page.get_by_role("cell", name="API-7", exact=True)).to_be_visible()

    page.goto(f"{live_server}/data-sources/{world.calls}/settings")
    page.get_by_role("button", name=f"Revoke token {token[:12]}").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("This cannot be undone")
    dialog.get_by_role("button", name="Revoke the token").click()
    expect(page.get_by_text("The token is revoked")).to_be_visible()
    refused = httpx.post(f"{live_server}/api/v1/data-sources/{world.calls}/registrations",
                         headers={"Authorization": f"Bearer {token}"}, json={"registrations": []})
    assert refused.status_code == 401
