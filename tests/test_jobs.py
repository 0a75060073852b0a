"""The job path: a Job row and an RQ job, run by real workers, progress and failure recorded."""

import os
import subprocess
import sys

import pytest
from sqlalchemy import delete, update

from portal.extensions import db
from portal.jobs import JobAlreadyRunning, enqueue
from portal.jobs.counting import recount, start_recount
from portal.models import DataSource, Job, JobStatus, Registration, User
from portal.queue import get_queue
from tests.conftest import run_queued_jobs


def stale_counter(world):
    db.session.execute(update(DataSource).where(DataSource.id == world.calls).values(registration_count=999))
    db.session.commit()


@pytest.mark.parametrize("db_backend", ["sqlite", "postgresql"])
def test_recount_job_writes_its_row_and_fixes_the_counter(app, world):
    stale_counter(world)
    job = start_recount(db.session.get(DataSource, world.calls), db.session.get(User, world.lead))
    assert db.session.get(Job, job.id).status == JobStatus.QUEUED
    assert get_queue().fetch_job(job.id) is not None
    run_queued_jobs()
    db.session.expire_all()
    row = db.session.get(Job, job.id)
    assert row.status == JobStatus.FINISHED
    assert row.counts == {"registrations": 30}
    assert (row.progress_done, row.progress_total) == (1, 1)
    assert db.session.get(DataSource, world.calls).registration_count == 30
    assert get_queue().fetch_job(job.id).meta["progress_done"] == 1


@pytest.mark.parametrize("db_backend", ["sqlite", "postgresql"])
def test_a_real_forking_worker_process_runs_the_job(app, world, database_url, redis_url):
    stale_counter(world)
    db.session.execute(delete(Registration).where(Registration.data_source_id == world.calls, Registration.external_id == "C-0"))
    db.session.commit()
    job = start_recount(db.session.get(DataSource, world.calls), None)
    env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url)
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "worker", "--burst"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    db.session.expire_all()
    assert db.session.get(Job, job.id).status == JobStatus.FINISHED
    assert db.session.get(DataSource, world.calls).registration_count == 29


def test_a_failing_job_marks_its_row_failed_with_the_error(app, world):
    job = start_recount(db.session.get(DataSource, world.activities), None)
    db.session.delete(db.session.get(DataSource, world.activities))  # gone before the job runs
    db.session.commit()
    run_queued_jobs()
    db.session.expire_all()
    row = db.session.get(Job, job.id)
    assert row.status == JobStatus.FAILED
    assert "LookupError" in row.error and "no longer exists" in row.error
    assert get_queue().fetch_job(job.id).get_status() == "failed"  # re-raised to RQ


def test_one_exclusive_job_per_data_source(app, world):
    first = enqueue(recount, "delete_all", organization_id=world.acme, data_source_id=world.calls)
    with pytest.raises(JobAlreadyRunning) as refused:
        enqueue(recount, "import", organization_id=world.acme, data_source_id=world.calls)
    assert "already running" in str(refused.value)
    assert refused.value.job.id == first.id
    other = enqueue(recount, "import", organization_id=world.acme, data_source_id=world.deals)
    run_queued_jobs()
    db.session.expire_all()
    assert db.session.get(Job, first.id).lock_key is None
    enqueue(recount, "import", organization_id=world.acme, data_source_id=world.calls)
    assert other.id


def test_job_partial_polls_while_running_and_stops_when_finished(app, client, auth, world):
    auth.login("lead@acme.test")
    job = start_recount(db.session.get(DataSource, world.calls), None)
    running = client.get(f"/jobs/{job.id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'hx-trigger="every 1s"' in running and "<progress" in running and "queued" in running
    run_queued_jobs()
    finished = client.get(f"/jobs/{job.id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "hx-trigger" not in finished and "finished" in finished


def test_job_of_another_organization_is_404(app, client, auth, world):
    job = start_recount(db.session.get(DataSource, world.calls), None)
    auth.login("lead@globex.test")
    assert client.get(f"/jobs/{job.id}").status_code == 404
