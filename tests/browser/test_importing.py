"""A team lead imports a quarter again from a SQL data source's settings and watches a real worker finish it."""

from datetime import date

import pytest
from playwright.sync_api import expect

from portal.demo import sales_rows, write_source_database
from portal.extensions import db
from portal.models import DataSource, Field

pytestmark = pytest.mark.browser

ROWS = sales_rows(today=date(2025, 12, 31))


def test_import_more_data_from_settings(page, live_server, log_in, world, tmp_path, worker_process):
    url = f"sqlite:///{tmp_path / 'original.sqlite3'}"
    write_source_database(url, ROWS)
    ds = DataSource(organization_id=world.acme, name="Sales database", connector="sql", source_type="table",
                    settings={"table": "sales", "id_column": "id", "date_column": "sold_at",
                              "employee_column": "employee_email"}, secrets={"url": url})
    ds.fields = [Field(key="product", label="Product", type="text", position=0),
                 Field(key="amount", label="Amount", type="number", position=1)]
    db.session.add(ds)
    db.session.commit()
    quarter = [(day, int(ext)) for ext, day, _, _ in ROWS if date(2025, 1, 1) <= day <= date(2025, 3, 31)]
    newest = str(max(quarter)[1])  # first on the data source's page, which lists the newest first
    later = next(ext for ext, day, _, _ in ROWS if day > date(2025, 3, 31))

    log_in("lead@acme.test")
    page.goto(f"{live_server}/data-sources/{ds.id}/settings")
    page.get_by_role("link", name="Import more data").click()
    page.get_by_label("From").fill("2025-01-01")
    page.get_by_label("To").fill("2025-03-31")
    page.get_by_role("button", name="Start import").click()
    expect(page.locator("#import-form progress")).to_be_visible()
    expect(page.locator("#import-form .job-status")).to_have_text("finished", timeout=20_000)
    expect(page.locator("#import-form .job-counts")).to_contain_text(f"new: {len(quarter)}")

    page.goto(f"{live_server}/data-sources/{ds.id}")
    expect(page.get_by_text(f"{len(quarter)} registrations")).to_be_visible()
    expect(page.get_by_role("cell", name=newest, exact=True)).to_be_visible()
    expect(page.get_by_role("cell", name=later, exact=True)).to_have_count(0)

    # A period ending before it starts is refused on the page, and nothing starts.
    page.goto(f"{live_server}/data-sources/{ds.id}/import")
    page.get_by_label("From").fill("2025-03-31")
    page.get_by_label("To").fill("2025-01-01")
    page.get_by_role("button", name="Start import").click()
    expect(page.get_by_role("alert")).to_have_text("The end of the period is before its start.")
