"""Deleting into the restore window, restoring, purging and suppressing, on SQLite and PostgreSQL."""

from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.connectors.base import SourceRecord
from portal.models import AuditEvent, DataSource, DeletionBatch, HiddenRegistration, Registration, Suppression, utcnow
from portal.operations.deletion import (
    DeletionRefused,
    Selection,
    delete_registrations,
    purge_expired_batches,
    remove_suppression,
    restore_batch,
    summarize,
)
from portal.operations.importing import ImportReport, employee_directory, upsert_records
from portal.operations.listing import RegistrationFilter

pytestmark = pytest.mark.parametrize("db_backend", ["sqlite", "postgresql"])


def snapshot(data_source_id):
    """Every live registration of a data source, exactly."""
    rows = db.session.execute(
        sa.select(Registration.id, Registration.external_id, Registration.employee_id,
                  Registration.occurred_on, Registration.values)
        .where(*RegistrationFilter(data_source_id).clauses()).order_by(Registration.id)
    ).all()
    return [tuple(row) for row in rows]


def ids_of(data_source_id, *external_ids):
    return frozenset(db.session.scalars(
        sa.select(Registration.id).where(*RegistrationFilter(data_source_id).clauses(),
                                         Registration.external_id.in_(external_ids))))


def counter(data_source_id):
    db.session.expire_all()
    return db.session.get(DataSource, data_source_id).registration_count


def test_deleting_ticked_registrations_moves_them_into_a_batch(app, world):
    selection = Selection(RegistrationFilter(world.calls), ids=ids_of(world.calls, "C-1", "C-2", "C-3"))
    batch = delete_registrations(selection, actor_id=world.lead, expected_count=3)
    assert batch.count == 3 and batch.kind == "selected"
    assert (batch.first_on, batch.last_on) == (date(2025, 1, 2), date(2025, 1, 4))
    assert len(snapshot(world.calls)) == 27 and counter(world.calls) == 27
    assert db.session.scalar(sa.select(sa.func.count()).where(HiddenRegistration.batch_id == batch.id)) == 3
    assert batch.expires_at - batch.created_at == timedelta(days=30)
    event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "delete_registrations"))
    assert (event.count, event.actor_id, event.data_source_id, event.outcome) == (3, world.lead, world.calls, "ok")
    assert event.details["selection"]["ids"] == sorted(selection.ids)


def test_all_matching_deletes_the_filter_across_pages_and_nothing_else(app, world):
    others = {ds: snapshot(ds) for ds in (world.deals, world.globex_deals)}
    flt = RegistrationFilter(world.calls, date_from=date(2025, 1, 5), date_to=date(2025, 1, 24), employee_id=world.ann)
    selection = Selection(flt, excluded_ids=ids_of(world.calls, "C-6"))
    assert summarize(selection).count == 9
    delete_registrations(selection, actor_id=world.lead, expected_count=9)
    left = {row[1] for row in snapshot(world.calls)}
    gone = {f"C-{n}" for n in range(4, 24) if n % 2 == 0} - {"C-6"}
    assert not (left & gone) and len(left) == 21 and "C-6" in left and "C-5" in left
    assert {ds: snapshot(ds) for ds in others} == others


def test_summary_tells_count_period_and_employees(app, world):
    summary = summarize(Selection(RegistrationFilter(world.calls, date_to=date(2025, 1, 4))))
    assert summary.count == 4
    assert (summary.first_on, summary.last_on) == (date(2025, 1, 1), date(2025, 1, 4))
    assert sorted(summary.employees) == [("Ann Able", True, 2), ("Ben Baker", False, 2)]


def test_empty_selection_is_refused(app, world):
    with pytest.raises(DeletionRefused, match="Nothing is selected"):
        delete_registrations(Selection(RegistrationFilter(world.calls), ids=frozenset()), actor_id=world.lead, expected_count=0)


def test_ids_of_another_data_source_delete_nothing(app, world):
    before = snapshot(world.calls), snapshot(world.globex_deals)
    foreign = ids_of(world.globex_deals, "G-1", "G-2")
    with pytest.raises(DeletionRefused, match="selection changed"):
        delete_registrations(Selection(RegistrationFilter(world.calls), ids=foreign | ids_of(world.calls, "C-1")),
                             actor_id=world.lead, expected_count=3)
    assert (snapshot(world.calls), snapshot(world.globex_deals)) == before
    assert db.session.scalar(sa.select(sa.func.count()).select_from(DeletionBatch)) == 0


def test_stale_selection_deletes_nothing(app, world):
    selection = Selection(RegistrationFilter(world.calls))
    before = snapshot(world.calls)
    with pytest.raises(DeletionRefused, match="30 of them can be deleted now"):
        delete_registrations(selection, actor_id=world.lead, expected_count=31)
    assert snapshot(world.calls) == before and counter(world.calls) == 30


def test_restore_brings_back_the_same_rows_and_twice_is_harmless(app, world):
    before = snapshot(world.calls)
    batch = delete_registrations(Selection(RegistrationFilter(world.calls, date_to=date(2025, 1, 10))),
                                 actor_id=world.lead, expected_count=10)
    assert restore_batch(batch.id, actor_id=world.lead) == 10
    assert snapshot(world.calls) == before and counter(world.calls) == 30
    assert restore_batch(batch.id, actor_id=world.lead) == 0
    assert snapshot(world.calls) == before and counter(world.calls) == 30
    assert db.session.get(DeletionBatch, batch.id).status == "restored"
    actions = db.session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions == ["delete_registrations", "restore_registrations"]


def test_an_import_brings_back_a_registration_in_the_window_and_restore_keeps_it(app, world):
    batch = delete_registrations(Selection(RegistrationFilter(world.calls), ids=ids_of(world.calls, "C-1", "C-2")),
                                 actor_id=world.lead, expected_count=2)
    data_source = db.session.get(DataSource, world.calls)
    report = ImportReport()
    upsert_records(data_source, [SourceRecord("C-1", date(2025, 1, 2), {"amount": 999})],
                   employee_directory(data_source), report)
    db.session.commit()
    assert (report.updated, report.revived) == (1, 1) and counter(world.calls) == 29
    assert restore_batch(batch.id, actor_id=world.lead) == 1
    values = {row[1]: row[4] for row in snapshot(world.calls)}
    assert values["C-1"] == {"amount": 999} and values["C-2"] == {"amount": 20}
    assert counter(world.calls) == 30 and len(values) == 30


def test_a_kept_deleted_registration_stays_deleted_when_imported(app, world):
    delete_registrations(Selection(RegistrationFilter(world.deals), ids=ids_of(world.deals, "D-1")),
                         actor_id=world.lead, expected_count=1, suppress=True)
    data_source = db.session.get(DataSource, world.deals)
    report = ImportReport()
    upsert_records(data_source, [SourceRecord("D-1", date(2025, 1, 2), {"amount": 10})],
                   employee_directory(data_source), report)
    db.session.commit()
    assert (report.skipped_suppressed, report.revived) == (1, 0)
    assert "D-1" not in {row[1] for row in snapshot(world.deals)} and counter(world.deals) == 29


def test_keep_them_deleted_suppresses_and_restore_lifts_it(app, world):
    batch = delete_registrations(Selection(RegistrationFilter(world.deals), ids=ids_of(world.deals, "D-1", "D-2")),
                                 actor_id=world.lead, expected_count=2, suppress=True)
    suppressed = db.session.scalars(sa.select(Suppression.external_id).where(Suppression.data_source_id == world.deals)).all()
    assert sorted(suppressed) == ["D-1", "D-2"]
    restore_batch(batch.id, actor_id=world.lead)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Suppression)) == 0


def test_removing_a_suppression_is_audited_and_scoped_to_its_data_source(app, world):
    delete_registrations(Selection(RegistrationFilter(world.deals), ids=ids_of(world.deals, "D-1")),
                         actor_id=world.lead, expected_count=1, suppress=True)
    suppression = db.session.scalar(sa.select(Suppression))
    with pytest.raises(DeletionRefused):
        remove_suppression(db.session.get(DataSource, world.calls), suppression.id, actor_id=world.lead)
    assert remove_suppression(db.session.get(DataSource, world.deals), suppression.id, actor_id=world.lead) == "D-1"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Suppression)) == 0


def test_purge_removes_only_batches_past_their_window_in_chunks(app, world):
    old = delete_registrations(Selection(RegistrationFilter(world.calls, date_to=date(2025, 1, 20))),
                               actor_id=world.lead, expected_count=20)
    recent = delete_registrations(Selection(RegistrationFilter(world.deals), ids=ids_of(world.deals, "D-1")),
                                  actor_id=world.lead, expected_count=1)
    db.session.get(DeletionBatch, old.id).expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert purge_expired_batches(chunk_size=3) == 20
    assert db.session.get(DeletionBatch, old.id).status == "purged"
    assert db.session.get(DeletionBatch, recent.id).status == "deleted"
    assert db.session.scalar(sa.select(sa.func.count()).where(HiddenRegistration.batch_id == old.id)) == 0
    physically = db.session.scalar(sa.select(sa.func.count()).where(Registration.data_source_id == world.calls))
    assert physically == 10  # the purged rows are gone from the table itself
    with pytest.raises(DeletionRefused, match="past its restore window"):
        restore_batch(old.id, actor_id=world.lead)
    assert restore_batch(recent.id, actor_id=world.lead) == 1
    assert counter(world.calls) == 10


def test_all_matching_hides_by_filter_and_rows_arriving_later_stay(app, world):
    batch = delete_registrations(Selection(RegistrationFilter(world.calls, employee_id=world.ben)),
                                 actor_id=world.lead, expected_count=15)
    assert batch.hides_by_filter and db.session.scalar(sa.select(sa.func.count()).select_from(HiddenRegistration)) == 0
    db.session.add(Registration(data_source_id=world.calls, external_id="late", occurred_on=date(2025, 1, 3),
                                employee_id=world.ben, values={}))
    db.session.commit()
    assert "late" in {row[1] for row in snapshot(world.calls)} and len(snapshot(world.calls)) == 16


def test_restoring_an_older_deletion_inside_a_newer_filter_deletion_brings_its_rows_back(app, world):
    """The newer filter covers rows that were already deleted; it must not keep them once restored."""
    before = snapshot(world.calls)
    older = delete_registrations(Selection(RegistrationFilter(world.calls), ids=ids_of(world.calls, "C-2", "C-4")),
                                 actor_id=world.lead, expected_count=2)
    newer = delete_registrations(Selection(RegistrationFilter(world.calls, employee_id=world.ann)),
                                 actor_id=world.lead, expected_count=13)
    assert counter(world.calls) == 15
    assert restore_batch(older.id, actor_id=world.lead) == 2
    assert {row[1] for row in snapshot(world.calls)} >= {"C-2", "C-4"} and counter(world.calls) == 17
    assert restore_batch(newer.id, actor_id=world.lead) == 13
    assert snapshot(world.calls) == before and counter(world.calls) == 30


def test_an_import_brings_back_a_row_of_a_filter_deletion(app, world):
    batch = delete_registrations(Selection(RegistrationFilter(world.calls, date_to=date(2025, 1, 5))),
                                 actor_id=world.lead, expected_count=5)
    data_source = db.session.get(DataSource, world.calls)
    report = ImportReport()
    upsert_records(data_source, [SourceRecord("C-0", date(2025, 1, 1), {"amount": 0})],
                   employee_directory(data_source), report)
    db.session.commit()
    assert report.revived == 1 and "C-0" in {row[1] for row in snapshot(world.calls)} and counter(world.calls) == 26
    assert restore_batch(batch.id, actor_id=world.lead) == 4 and counter(world.calls) == 30
    assert purge_expired_batches() == 0
