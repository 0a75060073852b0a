"""The "Import more data" page: the link in settings, the period form, its validation, permissions, the job."""

import re
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from portal.demo import sales_rows, write_source_database
from portal.extensions import db
from portal.models import DataSource, Field, Job, Registration
from portal.views.forms import ImportPeriodForm
from tests.conftest import run_queued_jobs

ROWS = sales_rows(today=date(2025, 12, 31))


@pytest.fixture
def sales(world, tmp_path):
    """An Acme data source with connector "sql" reading a real SQLite original database."""
    url = f"sqlite:///{tmp_path / 'original.sqlite3'}"
    write_source_database(url, ROWS)
    ds = DataSource(organization_id=world.acme, name="Sales database", connector="sql", source_type="table",
                    settings={"table": "sales", "id_column": "id", "date_column": "sold_at",
                              "employee_column": "employee_email"}, secrets={"url": url})
    ds.fields = [Field(key="amount", label="Amount", type="number", position=0)]
    db.session.add(ds)
    db.session.commit()
    return ds.id


@pytest.fixture
def lead(auth, world):
    auth.login("lead@acme.test")
    return auth


def jobs():
    return db.session.scalar(sa.select(sa.func.count()).select_from(Job))


def post_period(client, auth, data_source_id, start, end, htmx=True):
    headers = auth.htmx_headers() if htmx else {}
    data = {"date_from": start, "date_to": end}
    if not htmx:
        page = client.get(f"/data-sources/{data_source_id}/import").get_data(as_text=True)
        data["csrf_token"] = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    return client.post(f"/data-sources/{data_source_id}/import", data=data, headers=headers)


def test_settings_of_sql_and_pipedrive_data_sources_link_to_import_more_data(client, lead, world, sales):
    for ds in (sales, world.deals):
        html = client.get(f"/data-sources/{ds}/settings").get_data(as_text=True)
        assert re.search(rf'<a class="button primary" href="/data-sources/{ds}/import">Import more data</a>', html)
    assert "Import more data" not in client.get(f"/data-sources/{world.calls}/settings").get_data(as_text=True)


def test_the_form_asks_for_from_and_to_and_starts_with_start_import(client, lead, sales):
    response = client.get(f"/data-sources/{sales}/import")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<h2>Import more data</h2>" in html
    assert '<label for="date_from">From</label>' in html and '<label for="date_to">To</label>' in html
    assert re.search(r'<input[^>]+id="date_from"[^>]+type="date"', html)
    assert '<button type="submit" class="primary">Start import</button>' in html
    assert "No background jobs have run for this data source yet." in html


TODAY = date.today()


BAD_PERIODS = [
    ("", "", ["Choose the first day of the period.", "Choose the last day of the period."]),
    ("2025-01-01", "", ["Choose the last day of the period."]),
    ("", "2025-03-31", ["Choose the first day of the period."]),
    ("2025-03-31", "2025-01-01", ["The end of the period is before its start."]),
    ("2025-01-01", (TODAY + timedelta(days=1)).isoformat(), ["The period cannot end after today."]),
    ("2025-01-01", "2025-02-30", ["Not a valid date value."]),
]


def test_a_bad_period_is_refused_with_a_clear_message_and_starts_nothing(client, lead, sales):
    for start, end, messages in BAD_PERIODS:
        for htmx in (True, False):
            response = post_period(client, lead, sales, start, end, htmx=htmx)
            html = response.get_data(as_text=True)
            assert response.status_code == 422, (start, end)
            assert [m for m in messages if f'role="alert">{m}</p>' in html] == messages, (start, end, htmx)
            assert 'aria-invalid="true"' in html
            assert ("<html" in html) != htmx  # htmx gets the form fragment, a browser the page
    assert jobs() == 0


def test_a_period_ending_today_is_accepted(client, lead, sales):
    response = post_period(client, lead, sales, (TODAY - timedelta(days=7)).isoformat(), TODAY.isoformat())
    assert response.status_code == 200 and jobs() == 1


def test_a_maximum_span_declared_by_a_connector_is_enforced(app):
    with app.test_request_context(method="POST", data={"date_from": "2025-01-01", "date_to": "2025-02-01"}):
        form = ImportPeriodForm(meta={"csrf": False}, max_span_days=31)
        assert not form.validate() and form.date_to.errors == ["A period can span at most 31 days for this connector."]
    with app.test_request_context(method="POST", data={"date_from": "2025-01-01", "date_to": "2025-01-31"}):
        assert ImportPeriodForm(meta={"csrf": False}, max_span_days=31).validate()


def test_a_manual_data_source_has_no_import(client, lead, world):
    assert client.get(f"/data-sources/{world.calls}/import").status_code == 404
    assert post_period(client, lead, world.calls, "2025-01-01", "2025-01-31").status_code == 404
    assert jobs() == 0


def test_viewers_may_not_import(client, auth, world, sales):
    auth.login("viewer@acme.test")
    assert "Import more data" not in client.get(f"/data-sources/{sales}/settings").get_data(as_text=True)
    assert client.get(f"/data-sources/{sales}/import").status_code == 403
    assert post_period(client, auth, sales, "2025-01-01", "2025-01-31").status_code == 403
    assert jobs() == 0


def test_the_form_needs_the_csrf_token(client, lead, sales):
    response = client.post(f"/data-sources/{sales}/import", data={"date_from": "2025-01-01", "date_to": "2025-01-31"},
                           headers={"HX-Request": "true"})
    assert response.status_code == 400 and jobs() == 0


def test_another_organizations_data_source_is_not_found(client, lead, auth, world):
    assert client.get(f"/data-sources/{world.globex_deals}/import").status_code == 404
    assert post_period(client, lead, world.globex_deals, "2025-01-01", "2025-01-31").status_code == 404
    assert client.get("/data-sources/999999/import").status_code == 404
    assert jobs() == 0


def test_support_staff_can_import_for_any_organization(client, auth, world):
    auth.login("support@portal.test")
    assert client.get(f"/data-sources/{world.globex_deals}/import").status_code == 200


def test_logged_out_visitors_are_sent_to_log_in(client, sales):
    response = client.get(f"/data-sources/{sales}/import")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_a_valid_period_starts_the_job_shows_its_progress_and_it_finishes_with_the_report(client, lead, world, sales):
    response = post_period(client, lead, sales, "2025-01-01", "2025-03-31")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html
    job = db.session.scalar(sa.select(Job))
    assert (job.kind, job.params["start"], job.params["end"], job.params["connector"], job.requested_by_id) == (
        "import", "2025-01-01", "2025-03-31", "sql", world.lead)
    assert f'id="job-{job.id}"' in html and "<progress" in html and 'hx-trigger="every 1s"' in html
    assert '<span class="job-status" role="status">queued</span>' in html

    again = post_period(client, lead, sales, "2025-04-01", "2025-04-30")
    busy = again.get_data(as_text=True)
    assert again.status_code == 422 and "An import is already running for this data source." in busy
    assert f'id="job-{job.id}"' in busy and 'hx-trigger="every 1s"' in busy  # the running one's progress
    assert jobs() == 1

    run_queued_jobs()
    expected = sum(1 for _, day, _, _ in ROWS if date(2025, 1, 1) <= day <= date(2025, 3, 31))
    finished = client.get(f"/jobs/{job.id}", headers=lead.htmx_headers()).get_data(as_text=True)
    assert "finished" in finished and "hx-trigger" not in finished and f"new: {expected}" in finished
    assert db.session.scalar(sa.select(sa.func.count()).where(Registration.data_source_id == sales)) == expected
    page = client.get(f"/data-sources/{sales}/import").get_data(as_text=True)
    assert f'id="job-{job.id}"' in page and "finished" in page  # in the list of recent imports


def test_a_browser_post_without_htmx_goes_to_the_jobs_page(client, lead, sales):
    response = post_period(client, lead, sales, "2025-01-01", "2025-03-31", htmx=False)
    job = db.session.scalar(sa.select(Job))
    assert response.status_code == 302 and response.headers["Location"] == f"/jobs/{job.id}"
