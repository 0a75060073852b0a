"""Support staff find a failed import on the Jobs page, retry it with a reason, and watch a real worker finish it."""

import time
from datetime import date

import pytest
from playwright.sync_api import expect

from portal.connectors.base import Period
from portal.demo import sales_rows, write_source_database
from portal.extensions import db
from portal.jobs.importing import start_import
from portal.models import DataSource, Job, JobStatus, User

pytestmark = pytest.mark.browser

ROWS = sales_rows(today=date(2025, 12, 31))
Q1 = Period(date(2025, 1, 1), date(2025, 3, 31))


def test_retry_a_failed_import_from_the_jobs_page(page, live_server, log_in, world, tmp_path, worker_process):
    url = f"sqlite:///{tmp_path / 'original.sqlite3'}"
    write_source_database(url, ROWS)
    ds = DataSource(organization_id=world.acme, name="Sales database", connector="sql", source_type="table",
                    settings={"table": "sale", "id_column": "id", "date_column": "sold_at",
                              "employee_column": "employee_email"}, secrets={"url": url})
    db.session.add(ds)
    db.session.commit()
    job = start_import(ds, db.session.get(User, world.lead), Q1)
    deadline = time.monotonic() + 30
    while db.session.get(Job, job.id).status != JobStatus.FAILED:
        assert time.monotonic() < deadline, "the import did not fail"
        time.sleep(0.1)
        db.session.expire_all()
    ds = db.session.get(DataSource, ds.id)
    ds.settings = {**ds.settings, "table": "sales"}  # the mistyped table name, corrected
    db.session.commit()
    in_quarter = sum(1 for _, day, _, _ in ROWS if Q1.start <= day <= Q1.end)

    log_in("support@portal.test")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Jobs").click()
    page.get_by_label("Organization").select_option(label="Acme")
    page.get_by_label("Status").select_option(label="Failed")
    entry = page.get_by_role("region", name="Import, Sales database")
    expect(entry.locator(".job-status")).to_have_text("failed")
    expect(entry).to_contain_text("cannot be read")
    entry.get_by_role("button", name="Retry").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Retry “Import”?")
    dialog.get_by_label("Reason (required for support staff)").fill("Ticket 12: table name fixed")
    dialog.get_by_role("button", name="Retry").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(entry).to_contain_text("back on the queue")
    expect(entry.locator(".job-status")).to_have_text("finished", timeout=20_000)
    expect(entry.locator(".job-counts")).to_contain_text(f"new: {in_quarter}")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit log").click()
    row = page.get_by_role("row").filter(has_text="Retried a job")
    expect(row).to_contain_text("Ticket 12: table name fixed")
    expect(row).to_contain_text("support@portal.test")
