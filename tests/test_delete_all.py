"""Deleting all registrations and whole data sources: chunked, resumable, consistent."""

import time

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.jobs.delete_all import start_delete_all, start_delete_source
from portal.jobs.recovery import requeue_abandoned
from portal.models import (AuditEvent, DataSource, DeletionBatch, Field, HiddenRegistration, Job, JobStatus,
                           Registration, Suppression, User)
from portal.operations.listing import RegistrationFilter
from portal.operations.delete_all import delete_all_registrations
from portal.operations.deletion import restore_batch
from portal.operations.progress import Progress
from tests.conftest import kill_worker_and_horse, run_queued_jobs

both_databases = pytest.mark.parametrize("db_backend", ["sqlite", "postgresql"])


def snapshot(data_source_id):
    return [tuple(r) for r in db.session.execute(
        sa.select(Registration.id, Registration.external_id, Registration.employee_id, Registration.occurred_on,
                  Registration.values).where(*RegistrationFilter(data_source_id).clauses()).order_by(Registration.id))]


def live(data_source_id):
    return db.session.scalar(sa.select(sa.func.count()).where(*RegistrationFilter(data_source_id).clauses()))


def archived(batch_id):
    """Registrations the batch holds in the restore window."""
    return db.session.scalar(sa.select(sa.func.count()).where(HiddenRegistration.batch_id == batch_id))


class RecordingProgress(Progress):
    """Progress that remembers what it was told, and lets a registration arrive mid-run."""

    def __init__(self, on_update=None):
        self.updates, self._cursor, self.on_update = [], {}, on_update

    def update(self, done, total=None, cursor=None):
        self.updates.append((done, total))
        if cursor is not None:
            self._cursor = cursor
        if self.on_update:
            self.on_update(done)

    @property
    def cursor(self):
        return dict(self._cursor)


@both_databases
def test_delete_all_moves_every_row_into_one_batch_in_chunks_and_keeps_the_rest(app, world):
    db.session.add(Suppression(data_source_id=world.deals, external_id="kept-out"))
    db.session.get(DataSource, world.deals).settings = {"base_url": "http://pipedrive.local"}
    db.session.commit()
    before_deals, before_globex = snapshot(world.deals), snapshot(world.globex_deals)
    progress = RecordingProgress()
    batch = delete_all_registrations(world.deals, actor_id=world.lead, progress=progress, chunk_size=4)
    assert batch.kind == "all" and batch.count == 30 and archived(batch.id) == 30
    assert live(world.deals) == 0
    ds = db.session.get(DataSource, world.deals)
    assert ds.registration_count == 0 and ds.hidden_through_id is None
    assert ds.settings == {"base_url": "http://pipedrive.local"} and ds.secrets == {"api_token": "very-secret-token"}
    assert [f.key for f in ds.fields] == ["amount"]
    assert db.session.scalar(sa.select(Suppression.external_id)) == "kept-out"
    assert len(progress.updates) >= 8  # one per chunk of 4, plus the start
    assert progress.updates[0] == (0, 30) and progress.updates[-1][0] == 30
    assert snapshot(world.globex_deals) == before_globex
    actions = db.session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions == ["delete_all_started", "delete_all_registrations"]
    assert restore_batch(batch.id, actor_id=world.lead) == 30
    assert snapshot(world.deals) == before_deals


@both_databases
def test_registrations_arriving_during_the_run_stay(app, world):
    arrived = []

    def arrive(done):
        if done and not arrived:
            row = Registration(data_source_id=world.calls, external_id="new-call", occurred_on=sa.func.current_date(),
                               values={"amount": 1})
            db.session.add(row)
            db.session.execute(sa.update(DataSource).where(DataSource.id == world.calls)
                               .values(registration_count=DataSource.registration_count + 1))
            arrived.append(row)

    batch = delete_all_registrations(world.calls, actor_id=world.lead, progress=RecordingProgress(arrive), chunk_size=5)
    assert batch.count == 30
    assert [r[1] for r in snapshot(world.calls)] == ["new-call"]
    assert db.session.get(DataSource, world.calls).registration_count == 1


def test_the_data_source_shows_no_registrations_as_soon_as_the_job_starts(app, client, auth, world):
    """While chunks are still being moved, pages already show none of the old rows."""
    seen = []

    def look(done):
        if done and not seen:
            html = client.get(f"/data-sources/{world.calls}").get_data(as_text=True)
            seen.append(("0 registrations" in html, "<code>C-29</code>" in html))

    auth.login()
    delete_all_registrations(world.calls, actor_id=world.lead, progress=RecordingProgress(look), chunk_size=5)
    assert seen == [(True, False)]


def make_large(data_source_id, rows):
    """Add many registrations fast, in SQL."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(sa.text(
            "INSERT INTO registration (data_source_id, external_id, occurred_on, \"values\", updated_at) "
            "SELECT :ds, 'big-' || n, DATE '2025-01-01' + (n % 600), '{}', now() FROM generate_series(1, :rows) AS n"),
            {"ds": data_source_id, "rows": rows})
    else:
        db.session.execute(sa.text(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :rows) "
            "INSERT INTO registration (data_source_id, external_id, occurred_on, \"values\", updated_at) "
            "SELECT :ds, 'big-' || i, date('2025-01-01', '+' || (i % 600) || ' days'), '{}', datetime('now') FROM n"),
            {"ds": data_source_id, "rows": rows})
    db.session.execute(sa.update(DataSource).where(DataSource.id == data_source_id)
                       .values(registration_count=DataSource.registration_count + rows))
    db.session.commit()


@both_databases
def test_a_worker_killed_mid_job_loses_nothing_and_the_rerun_ends_exactly_right(app, world, start_worker):
    make_large(world.calls, 60_000)
    total = 60_030
    before, other = snapshot(world.calls), snapshot(world.deals)
    app.config["JOB_RETRIES"] = 1
    job = start_delete_all(db.session.get(DataSource, world.calls), db.session.get(User, world.lead))
    worker = start_worker(DELETE_CHUNK_SIZE="500")
    deadline = time.monotonic() + 60
    while True:
        db.session.expire_all()
        done = db.session.get(Job, job.id).progress_done
        if 0 < done < total:
            break
        assert time.monotonic() < deadline and worker.poll() is None, "the job never got going"
        time.sleep(0.01)
    kill_worker_and_horse(worker)
    db.session.expire_all()
    row = db.session.get(Job, job.id)
    batch_id = row.cursor["batch_id"]
    assert row.status == JobStatus.STARTED and 0 < archived(batch_id) < total
    assert live(world.calls) + archived(batch_id) == total  # every row live or in the batch, none half
    assert snapshot(world.deals) == other

    assert requeue_abandoned(stale_after_seconds=0) == [job.id]
    rerun = start_worker(burst=True, DELETE_CHUNK_SIZE="500")
    assert rerun.wait(120) == 0
    db.session.expire_all()
    row = db.session.get(Job, job.id)
    assert row.status == JobStatus.FINISHED and row.counts["deleted"] == total and row.attempts == 2
    assert live(world.calls) == 0 and archived(batch_id) == total
    assert db.session.get(DataSource, world.calls).registration_count == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(DeletionBatch)) == 1
    assert snapshot(world.deals) == other
    restore_batch(batch_id, actor_id=world.lead)
    assert snapshot(world.calls) == before


@both_databases
def test_a_job_that_keeps_failing_ends_failed_and_leaves_the_data_source_consistent(app, client, auth, world):
    # Tiny chunks and a one-second timeout: RQ stops the job mid-way on every attempt.
    make_large(world.calls, 20_000)
    app.config.update(DELETE_CHUNK_SIZE=5, JOB_TIMEOUT_SECONDS=1)
    job = start_delete_all(db.session.get(DataSource, world.calls), db.session.get(User, world.lead))
    run_queued_jobs()
    db.session.expire_all()
    row = db.session.get(Job, job.id)
    assert row.status == JobStatus.FAILED and "JobTimeoutException" in row.error and row.lock_key is None
    batch_id = row.cursor["batch_id"]
    assert 0 < archived(batch_id) < 20_030 and live(world.calls) + archived(batch_id) == 20_030
    ds = db.session.get(DataSource, world.calls)
    assert ds.hidden_through_id is None and ds.registration_count == live(world.calls)
    assert db.session.scalar(sa.select(AuditEvent.outcome).where(AuditEvent.action == "delete_all_registrations")) == "failed"
    auth.login()
    html = client.get(f"/jobs/{job.id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "failed" in html and "JobTimeoutException" in html and "hx-trigger" not in html


@both_databases
def test_delete_data_source_removes_it_and_everything_in_it(app, world):
    job = start_delete_source(db.session.get(DataSource, world.deals), db.session.get(User, world.lead), "closing")
    app.config["DELETE_CHUNK_SIZE"] = 7
    run_queued_jobs()
    db.session.expire_all()
    assert db.session.get(DataSource, world.deals) is None
    assert live(world.deals) == 0
    assert db.session.scalar(sa.select(sa.func.count()).where(Field.data_source_id == world.deals)) == 0
    row = db.session.get(Job, job.id)
    assert row.status == JobStatus.FINISHED and row.counts == {"deleted": 30}
    event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "delete_data_source"))
    assert (event.data_source_name, event.count, event.reason) == ("Deals", 30, "closing")
    assert live(world.calls) == 30
