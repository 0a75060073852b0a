"""Deleting all registrations and whole data sources: chunked, resumable, consistent."""

import time

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.jobs.delete_all import start_delete_all, start_delete_source
from portal.models import (AuditEvent, DataSource, DeletionBatch, Field, Job, JobStatus,
                           Registration, Suppression, User)
from portal.jobs.maintenance import purge_expired
from portal.operations.deletion import rows_of
from portal.operations.listing import RegistrationFilter
from portal.queue import get_queue
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


def in_batch(batch_id):
    """Registrations the batch holds in the restore window."""
    batch = db.session.get(DeletionBatch, batch_id)
    return db.session.scalar(sa.select(sa.func.count()).select_from(Registration).where(*rows_of(batch)))


def physically(data_source_id):
    """Rows in the table, live or in the restore window."""
    return db.session.scalar(sa.select(sa.func.count()).where(Registration.data_source_id == data_source_id))


class RecordingProgress(Progress):
    """Progress that remembers what it was told, and lets a registration arrive meanwhile."""

    def __init__(self, on_update=None):
        self.updates, self.on_update = [], on_update

    def update(self, done, total=None, cursor=None):
        self.updates.append((done, total))
        if self.on_update:
            self.on_update(done)


@both_databases
def test_delete_all_puts_every_row_in_one_batch_and_keeps_settings_fields_and_the_rest(app, world):
    db.session.add(Suppression(data_source_id=world.deals, external_id="kept-out"))
    db.session.get(DataSource, world.deals).settings = {"base_url": "http://pipedrive.local"}
    db.session.commit()
    before_deals, before_globex = snapshot(world.deals), snapshot(world.globex_deals)
    progress = RecordingProgress()
    batch = delete_all_registrations(world.deals, actor_id=world.lead, progress=progress)
    assert batch.kind == "all" and batch.count == 30 and in_batch(batch.id) == 30
    assert (batch.first_on.isoformat(), batch.last_on.isoformat()) == ("2025-01-01", "2025-01-30")
    assert live(world.deals) == 0 and physically(world.deals) == 30  # restorable until purged
    ds = db.session.get(DataSource, world.deals)
    assert ds.registration_count == 0
    assert ds.settings == {"base_url": "http://pipedrive.local"} and ds.secrets == {"api_token": "very-secret-token"}
    assert [f.key for f in ds.fields] == ["amount"]
    assert db.session.scalar(sa.select(Suppression.external_id)) == "kept-out"
    assert progress.updates == [(30, 30)]
    assert snapshot(world.globex_deals) == before_globex
    actions = db.session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions == ["delete_all_registrations"]
    assert restore_batch(batch.id, actor_id=world.lead) == 30
    assert snapshot(world.deals) == before_deals and db.session.get(DataSource, world.deals).registration_count == 30


@both_databases
def test_registrations_arriving_while_it_runs_and_after_stay(app, world):
    arrived = []

    def arrive(done):
        row = Registration(data_source_id=world.calls, external_id=f"new-{len(arrived)}",
                           occurred_on=sa.func.current_date(), values={"amount": 1})
        db.session.add(row)
        db.session.execute(sa.update(DataSource).where(DataSource.id == world.calls)
                           .values(registration_count=DataSource.registration_count + 1))
        arrived.append(row)

    batch = delete_all_registrations(world.calls, actor_id=world.lead, progress=RecordingProgress(arrive))
    arrive(0)
    db.session.commit()
    assert batch.count == 30
    assert [r[1] for r in snapshot(world.calls)] == ["new-0", "new-1"]
    assert db.session.get(DataSource, world.calls).registration_count == 2
    assert restore_batch(batch.id, actor_id=world.lead) == 30 and live(world.calls) == 32


@both_databases
def test_suppressing_on_delete_all_keeps_every_external_id_out_of_imports(app, world):
    delete_all_registrations(world.activities, actor_id=world.lead, progress=RecordingProgress(), suppress=True)
    suppressed = db.session.scalars(sa.select(Suppression.external_id).where(Suppression.data_source_id == world.activities))
    assert sorted(suppressed) == [f"A-{n}" for n in range(5)]


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
def test_a_delete_all_job_shows_none_at_once_and_a_worker_killed_mid_purge_loses_nothing(app, world, start_worker):
    """The long part of deleting everything is the purge: killed half-way, it resumes to exactly gone."""
    make_large(world.calls, 60_000)
    total = 60_030
    other = snapshot(world.deals)
    job = start_delete_all(db.session.get(DataSource, world.calls), db.session.get(User, world.lead))
    assert start_worker(burst=True).wait(60) == 0
    db.session.expire_all()
    row = db.session.get(Job, job.id)
    assert row.status == JobStatus.FINISHED and row.counts["deleted"] == total
    assert live(world.calls) == 0 and db.session.get(DataSource, world.calls).registration_count == 0
    batch = db.session.get(DeletionBatch, row.counts["batch_id"])
    batch.expires_at = sa.func.current_timestamp()
    db.session.commit()

    get_queue().enqueue(purge_expired)
    worker = start_worker(PURGE_CHUNK_SIZE="500")
    deadline = time.monotonic() + 60
    while not 0 < physically(world.calls) < total:
        assert time.monotonic() < deadline and worker.poll() is None, "the purge never got going"
        time.sleep(0.01)
    kill_worker_and_horse(worker)
    db.session.expire_all()
    left = physically(world.calls)
    assert 0 < left < total and live(world.calls) == 0  # what is left is still hidden, not back
    assert db.session.get(DeletionBatch, batch.id).status == "deleted" and snapshot(world.deals) == other

    get_queue().enqueue(purge_expired)  # the next scheduled purge picks it up again
    assert start_worker(burst=True, PURGE_CHUNK_SIZE="500").wait(120) == 0
    db.session.expire_all()
    assert physically(world.calls) == 0 and db.session.get(DeletionBatch, batch.id).status == "purged"
    assert snapshot(world.deals) == other and db.session.get(DataSource, world.calls).registration_count == 0


@both_databases
def test_a_delete_all_job_that_keeps_failing_ends_failed_and_changes_nothing(app, client, auth, world):
    job = start_delete_all(db.session.get(DataSource, world.calls), db.session.get(User, world.lead))
    db.session.delete(db.session.get(DataSource, world.calls))  # gone before the job runs
    db.session.commit()
    run_queued_jobs()
    db.session.expire_all()
    row = db.session.get(Job, job.id)
    assert row.status == JobStatus.FAILED and "no longer exists" in row.error and row.lock_key is None
    assert snapshot(world.deals) and live(world.deals) == 30
    auth.login()
    html = client.get(f"/jobs/{job.id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "failed" in html and "no longer exists" in html and "hx-trigger" not in html


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
