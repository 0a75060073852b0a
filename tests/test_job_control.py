"""Retrying a failed job and canceling a queued or running one, through the pages, with real RQ workers."""

import time

import pytest
import sqlalchemy as sa
from rq.job import Job as RQJob

from portal.extensions import db
from portal.jobs.importing import start_import
from portal.models import AuditEvent, DataSource, Job, JobStatus, User
from portal.queue import redis_connection
from tests.conftest import run_queued_jobs
from tests.test_importing import (LARGE_PERIOD, Q1, add_sql_source, counter, expected_in, large_rows, live,
                                  sqlite_original, write_large_original)

__all__ = ["sqlite_original"]  # a fixture, used by name


def job_row(job_id):
    db.session.expire_all()
    return db.session.get(Job, job_id)


def post(client, auth, url, reason="", **headers):
    return client.post(url, data={"reason": reason}, headers={"X-CSRFToken": auth.csrf_token(), **headers})


def failed_import(world, original):
    """An import of a table that is not there: it fails, with the reason on its row."""
    ds_id = add_sql_source(world, original, table="no_such_table")
    job = start_import(db.session.get(DataSource, ds_id), db.session.get(User, world.lead), Q1)
    run_queued_jobs()
    assert job_row(job.id).status == JobStatus.FAILED
    return ds_id, job.id


def test_a_failed_import_is_retried_from_its_page_and_finishes(app, client, auth, world, sqlite_original):
    ds_id, job_id = failed_import(world, sqlite_original)
    auth.login("lead@acme.test")
    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert f'hx-get="/jobs/{job_id}/confirm"' in page and 'value="retry"' in page and "no_such_table" in page

    ds = db.session.get(DataSource, ds_id)
    ds.settings = {**ds.settings, "table": "sales"}  # someone fixed the settings
    db.session.commit()
    response = post(client, auth, f"/jobs/{job_id}/retry", **{"HX-Request": "true"})
    assert response.status_code == 200 and "back on the queue" in response.get_data(as_text=True)
    row = job_row(job_id)
    assert row.status == JobStatus.QUEUED and row.lock_key == f"data_source:{ds_id}" and row.error is None
    run_queued_jobs()
    row = job_row(job_id)
    assert row.status == JobStatus.FINISHED and row.counts["new"] == len(expected_in(Q1)) == live(ds_id)
    assert row.lock_key is None
    event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "retry_job"))
    assert event.actor_id == world.lead and event.details == {"job_id": job_id, "kind": "import"}

    # Finished now: nothing to retry, and nothing changes.
    response = post(client, auth, f"/jobs/{job_id}/retry")
    assert response.status_code == 422 and "Only a failed job can be retried" in response.get_data(as_text=True)
    assert job_row(job_id).status == JobStatus.FINISHED


def test_a_retry_waits_for_the_data_sources_other_job_and_viewers_and_strangers_cannot(
        app, client, auth, world, sqlite_original):
    ds_id, job_id = failed_import(world, sqlite_original)
    busy = start_import(db.session.get(DataSource, ds_id), db.session.get(User, world.lead), Q1)
    auth.login("lead@acme.test")
    response = post(client, auth, f"/jobs/{job_id}/retry")
    assert response.status_code == 422 and "already running" in response.get_data(as_text=True)
    assert job_row(job_id).status == JobStatus.FAILED and job_row(busy.id).lock_key == f"data_source:{ds_id}"

    auth.login("viewer@acme.test")
    assert post(client, auth, f"/jobs/{job_id}/retry").status_code == 403
    assert f'/jobs/{job_id}/confirm' not in client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert client.get(f"/jobs/{job_id}/confirm?action=retry").status_code == 403
    auth.login("lead@globex.test")
    assert post(client, auth, f"/jobs/{job_id}/retry").status_code == 404
    assert job_row(job_id).status == JobStatus.FAILED


def test_support_staff_give_a_reason_which_the_audit_log_keeps(app, client, auth, world, sqlite_original):
    ds_id, job_id = failed_import(world, sqlite_original)
    auth.login("support@portal.test")
    response = post(client, auth, f"/jobs/{job_id}/retry", **{"HX-Request": "true"})
    assert response.status_code == 422 and "must give a reason" in response.get_data(as_text=True)
    assert job_row(job_id).status == JobStatus.FAILED
    response = post(client, auth, f"/jobs/{job_id}/retry", reason="Ticket 4711", **{"HX-Request": "true"})
    assert response.status_code == 200 and job_row(job_id).status == JobStatus.QUEUED
    event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "retry_job"))
    assert event.reason == "Ticket 4711" and event.actor_id == world.support


def test_a_queued_job_is_canceled_before_it_runs_and_frees_the_data_source(app, client, auth, world, sqlite_original):
    ds_id = add_sql_source(world, sqlite_original)
    job = start_import(db.session.get(DataSource, ds_id), db.session.get(User, world.lead), Q1)
    auth.login("lead@acme.test")
    page = client.get(f"/jobs/{job.id}").get_data(as_text=True)
    assert f'hx-get="/jobs/{job.id}/confirm" hx-target="#dialog"' in page and 'value="cancel"' in page
    dialog = client.get(f"/jobs/{job.id}/confirm?action=cancel", headers=auth.htmx_headers()).get_data(as_text=True)
    assert "<dialog" in dialog and "Cancel “Import”?" in dialog and "It has not started: it will not run." in dialog
    assert f'hx-post="/jobs/{job.id}/cancel"' in dialog and job_row(job.id).status == JobStatus.QUEUED  # only asked
    assert client.get(f"/jobs/{job.id}/confirm?action=explode").status_code == 400
    response = post(client, auth, f"/jobs/{job.id}/cancel", **{"HX-Request": "true"})
    answer = response.get_data(as_text=True)
    assert response.status_code == 200 and "is canceled" in answer
    assert '<div id="dialog" hx-swap-oob="true"></div>' in answer  # the dialog closes
    row = job_row(job.id)
    assert row.status == JobStatus.CANCELED and row.lock_key is None
    assert RQJob.fetch(job.id, connection=redis_connection()).get_status() == "canceled"
    run_queued_jobs()
    assert live(ds_id) == 0 and job_row(job.id).status == JobStatus.CANCELED  # it never ran
    assert db.session.scalar(sa.select(AuditEvent.actor_id).where(AuditEvent.action == "cancel_job")) == world.lead
    start_import(db.session.get(DataSource, ds_id), db.session.get(User, world.lead), Q1)  # the data source is free

    response = post(client, auth, f"/jobs/{job.id}/cancel")
    assert response.status_code == 422 and "only a queued or running job" in response.get_data(as_text=True)


@pytest.mark.parametrize("db_backend", ["sqlite", "postgresql"])
def test_a_running_import_stops_after_its_batch_and_importing_again_completes_it(
        app, client, auth, world, tmp_path, start_worker):
    original = write_large_original(tmp_path / "large.sqlite3")
    ds_id = add_sql_source(world, original, name="Large sales")
    expected = expected_in(LARGE_PERIOD, large_rows())
    job = start_import(db.session.get(DataSource, ds_id), db.session.get(User, world.lead), LARGE_PERIOD)
    worker = start_worker()
    try:
        deadline = time.monotonic() + 60
        while not 0 < job_row(job.id).progress_done < len(expected):
            assert time.monotonic() < deadline and worker.poll() is None, "the import never got going"
            time.sleep(0.01)
        auth.login("lead@acme.test")
        response = post(client, auth, f"/jobs/{job.id}/cancel", **{"HX-Request": "true"})
        assert response.status_code == 200 and "stops after the batch" in response.get_data(as_text=True)
        while job_row(job.id).is_active:
            assert time.monotonic() < deadline, "the import did not stop"
            time.sleep(0.05)
    finally:
        worker.terminate()
        worker.wait(30)
    row = job_row(job.id)
    assert row.status == JobStatus.CANCELED and row.lock_key is None and "Canceled" in row.error
    partial = live(ds_id)
    assert 0 < partial < len(expected) and counter(ds_id) == partial  # whole batches only, the counter with them
    outcomes = db.session.scalars(sa.select(AuditEvent.outcome).where(AuditEvent.action == "import")).all()
    assert outcomes == ["canceled"]

    again = start_import(db.session.get(DataSource, ds_id), db.session.get(User, world.lead), LARGE_PERIOD)
    run_queued_jobs()
    row = job_row(again.id)
    assert row.status == JobStatus.FINISHED and row.counts["new"] == len(expected) - partial
    assert live(ds_id) == counter(ds_id) == len(expected)


def test_the_jobs_page_lists_the_organizations_jobs_and_filters_failed_ones(app, client, auth, world, sqlite_original):
    _, failed_id = failed_import(world, sqlite_original)
    ok_ds = add_sql_source(world, sqlite_original, name="Working sales")
    ok = start_import(db.session.get(DataSource, ok_ds), db.session.get(User, world.lead), Q1)
    auth.login("lead@acme.test")
    everything = client.get("/jobs").get_data(as_text=True)
    assert f'id="job-{failed_id}"' in everything and f'id="job-{ok.id}"' in everything
    failed = client.get("/jobs?status=failed").get_data(as_text=True)
    assert f'id="job-{failed_id}"' in failed and f'id="job-{ok.id}"' not in failed
    assert client.get("/jobs?status=exploded").status_code == 400
    synced_ds = add_sql_source(world, sqlite_original, name="Synced sales")
    synced = start_import(db.session.get(DataSource, synced_ds), None, Q1)  # as the scheduled sync starts it
    by_people = client.get("/jobs?started_by=people").get_data(as_text=True)
    by_schedule = client.get("/jobs?started_by=schedule").get_data(as_text=True)
    assert f'id="job-{ok.id}"' in by_people and f'id="job-{synced.id}"' not in by_people
    assert f'id="job-{synced.id}"' in by_schedule and f'id="job-{ok.id}"' not in by_schedule
    assert client.get("/jobs?started_by=robots").status_code == 400
    auth.login("lead@globex.test")
    assert f'id="job-{failed_id}"' not in client.get("/jobs").get_data(as_text=True)
    assert client.get(f"/jobs?organization={world.acme}").status_code == 404
    globex_ds = add_sql_source(world, sqlite_original, name="Globex sales")
    globex_job = start_import(db.session.get(DataSource, globex_ds), None, Q1)
    globex_job.organization_id = world.globex  # as if Globex's own
    db.session.commit()
    auth.login("support@portal.test")
    assert f'id="job-{failed_id}"' in client.get(f"/jobs?organization={world.acme}").get_data(as_text=True)
    everywhere = client.get("/jobs?organization=all&status=failed").get_data(as_text=True)
    assert f'id="job-{failed_id}"' in everywhere and f'id="job-{ok.id}"' not in everywhere
    assert "Acme · " in everywhere and '<option value="all" selected>All organizations</option>' in everywhere
    assert f'id="job-{globex_job.id}"' in client.get("/jobs?organization=all").get_data(as_text=True)
    auth.login("lead@acme.test")  # "all" is for support staff only: a lead sees their own organization
    assert f'id="job-{globex_job.id}"' not in client.get("/jobs?organization=all").get_data(as_text=True)
