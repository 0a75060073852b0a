"""A team lead uploads a CSV file with a bad row, imports only the valid rows, reads the report and sees the total grow."""

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

FILE = ("external_id,date,employee_email,Amount\n"
        "may-1,2025-05-01,ann@acme.test,120\n"
        "may-2,2025-05-32,ann@acme.test,80\n"
        "may-3,2025-05-03,ben@acme.test,45.5\n").encode()


def test_upload_a_file_with_a_bad_row_and_import_only_the_valid_rows(page, live_server, log_in, world):
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    log_in("lead@acme.test")
    page.goto(f"{live_server}/data-sources/{world.calls}")
    expect(page.get_by_text("30 registrations")).to_be_visible()

    page.get_by_role("link", name="Settings").click()
    page.get_by_role("link", name="Upload CSV").click()
    page.get_by_label("CSV file").set_input_files(files=[{"name": "may.csv", "mimeType": "text/csv", "buffer": FILE}])
    group = page.get_by_role("group", name="If some rows are bad")
    expect(group.get_by_label("Import none of them")).to_be_checked()
    group.get_by_label("Import only the valid rows").check()
    page.get_by_role("button", name="Upload").click()

    expect(page.get_by_role("heading", name="Upload report: may.csv")).to_be_visible()
    expect(page.get_by_text("Imported 2 of 3 rows.")).to_be_visible()
    for term, count in [("New", "2"), ("Updated", "0"), ("Unchanged", "0"), ("Bad rows, not imported", "1")]:
        expect(page.locator("dt", has_text=term).locator("xpath=following-sibling::dd[1]").first).to_have_text(count)
    bad = page.get_by_role("row", name="Row 3")
    expect(bad).to_contain_text("“2025-05-32” is not a date like 2025-03-31.")
    expect(page.get_by_text("Calls now has 32 registrations.")).to_be_visible()

    page.get_by_role("link", name="See the registrations").click()
    expect(page.get_by_text("32 registrations")).to_be_visible()
    expect(page.get_by_role("cell", name="may-1", exact=True)).to_be_visible()
    expect(page.get_by_role("cell", name="may-2", exact=True)).to_have_count(0)
    assert errors == []


def test_add_one_registration_in_the_form(page, live_server, log_in, world):
    log_in("lead@acme.test")
    page.goto(f"{live_server}/data-sources/{world.calls}/settings")
    page.get_by_role("link", name="Add registration").click()
    page.get_by_label("Date").fill("2025-06-01")
    page.get_by_label("Employee").select_option(label="Ann Able")
    page.get_by_label("Amount").fill("12.5")
    page.get_by_label("External id (optional)").fill("by-hand-1")
    page.get_by_role("button", name="Add registration").click()
    expect(page.get_by_text("Registration by-hand-1 added.")).to_be_visible()
    expect(page.get_by_text("31 registrations")).to_be_visible()
    expect(page.get_by_role("row", name="by-hand-1")).to_contain_text("Ann Able")
