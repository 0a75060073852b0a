"""The settings page's Delete button with its dropdown, the typed-name confirmation, and the job."""

import re

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.operations.listing import RegistrationFilter
from portal.models import DataSource, Job
from tests.conftest import run_queued_jobs


def live(data_source_id):
    return db.session.scalar(sa.select(sa.func.count()).where(*RegistrationFilter(data_source_id).clauses()))


@pytest.fixture
def lead(client, auth, world):
    auth.login("lead@acme.test")
    return auth


def test_settings_has_delete_with_a_dropdown_of_both_options(client, lead, world):
    html = client.get(f"/data-sources/{world.calls}/settings").get_data(as_text=True)
    assert 'aria-label="More delete options"' in html
    assert ">Delete all registrations</button>" in html and ">Delete data source</button>" in html


def test_viewers_get_no_delete_and_the_endpoints_refuse(client, auth, world):
    auth.login("viewer@acme.test")
    assert "More delete options" not in client.get(f"/data-sources/{world.calls}/settings").get_data(as_text=True)
    response = client.post(f"/data-sources/{world.calls}/delete-all", data={"confirm_name": "Calls"},
                           headers=auth.htmx_headers())
    assert response.status_code == 403 and live(world.calls) == 30


def test_confirmation_tells_count_period_warning_and_asks_for_the_name(client, lead, world):
    html = client.get(f"/data-sources/{world.activities}/delete-all/confirm", headers=lead.htmx_headers()).get_data(as_text=True)
    assert "5 registrations" in html and "from 2025-01-01 to 2025-01-05" in html
    assert "Pipedrive will import them again." in html and "Keep them deleted" in html
    assert '<label for="confirm-name">Type the data source name to confirm</label>' in html
    assert re.search(r'<button type="submit" class="danger" id="confirm-delete" disabled>Delete all registrations</button>', html)


def test_a_wrong_name_deletes_nothing(client, lead, world):
    response = client.post(f"/data-sources/{world.calls}/delete-all", data={"confirm_name": "calls"},
                           headers=lead.htmx_headers())
    assert response.status_code == 422 and "does not match" in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Job)) == 0 and live(world.calls) == 30


def test_the_right_name_starts_a_job_with_progress_and_a_second_one_is_refused(client, lead, world):
    response = client.post(f"/data-sources/{world.calls}/delete-all", data={"confirm_name": "Calls"},
                           headers=lead.htmx_headers())
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<progress" in html and 'hx-trigger="every 1s"' in html
    again = client.post(f"/data-sources/{world.calls}/delete-all", data={"confirm_name": "Calls"},
                        headers=lead.htmx_headers())
    assert again.status_code == 422 and "already running" in again.get_data(as_text=True)
    run_queued_jobs()
    job = db.session.scalar(sa.select(Job))
    finished = client.get(f"/jobs/{job.id}", headers=lead.htmx_headers()).get_data(as_text=True)
    assert "finished" in finished and "hx-trigger" not in finished and "deleted: 30" in finished
    assert live(world.calls) == 0
    settings = client.get(f"/data-sources/{world.calls}/settings").get_data(as_text=True)
    assert "Delete all registrations" in settings and "finished" in settings  # in the activity list
    assert "Amount" in settings  # fields are kept


def test_restore_of_a_delete_all_brings_every_registration_back(client, lead, world):
    client.post(f"/data-sources/{world.calls}/delete-all", data={"confirm_name": "Calls"}, headers=lead.htmx_headers())
    run_queued_jobs()
    page = client.get(f"/data-sources/{world.calls}/deleted").get_data(as_text=True)
    assert "All registrations" in page
    restore = re.search(r'action="(/data-sources/\d+/deleted/\d+/restore)"', page).group(1)
    client.post(restore, headers={"X-CSRFToken": lead.csrf_token()})
    run_queued_jobs()
    assert live(world.calls) == 30


def test_restore_is_refused_while_a_destructive_job_runs(client, lead, world):
    client.post(f"/data-sources/{world.calls}/delete-all", data={"confirm_name": "Calls"}, headers=lead.htmx_headers())
    run_queued_jobs()
    page = client.get(f"/data-sources/{world.calls}/deleted").get_data(as_text=True)
    restore = re.search(r'action="(/data-sources/\d+/deleted/\d+/restore)"', page).group(1)
    client.post(f"/data-sources/{world.calls}/delete-all", data={"confirm_name": "Calls"}, headers=lead.htmx_headers())
    response = client.post(restore, headers={"X-CSRFToken": lead.csrf_token()})
    assert response.status_code == 422 and "already running" in response.get_data(as_text=True)


def test_support_staff_must_give_a_reason(client, auth, world):
    auth.login("support@portal.test")
    response = client.post(f"/data-sources/{world.globex_deals}/delete-all", data={"confirm_name": "Globex Deals"},
                           headers=auth.htmx_headers())
    assert response.status_code == 422 and "must give a reason" in response.get_data(as_text=True)
    response = client.post(f"/data-sources/{world.globex_deals}/delete-all",
                           data={"confirm_name": "Globex Deals", "reason": "ticket 7"}, headers=auth.htmx_headers())
    assert response.status_code == 200


def test_delete_data_source_redirects_to_its_job_and_hides_it(client, lead, world):
    response = client.post(f"/data-sources/{world.deals}/delete-source", data={"confirm_name": "Deals"},
                           headers=lead.htmx_headers())
    assert response.status_code == 204 and response.headers["HX-Redirect"].startswith("/jobs/")
    assert client.get(f"/data-sources/{world.deals}").status_code == 404
    assert "Deals</a>" not in client.get("/").get_data(as_text=True)
    run_queued_jobs()
    assert db.session.get(DataSource, world.deals) is None
    assert "finished" in client.get(response.headers["HX-Redirect"]).get_data(as_text=True)
