"""Deleting every registration of a data source, or the data source itself.

Deleting all registrations records one batch that hides them by id: every registration
of the data source up to the highest id at that moment. It is one short transaction
whatever the size, so the data source shows none at once and a killed worker leaves
either nothing done or everything done. The rows go for good when the batch is purged,
in committed chunks by id range (deletion.purge_batch). Deleting the data source removes
its rows in committed chunks too, resuming from its cursor when rerun.
"""

from sqlalchemy import delete, func, select, update

from portal.extensions import db
from portal.models import DataSource, DeletionBatch, HiddenRegistration, Registration, Suppression
from portal.operations import audit
from portal.operations.counting import adjust_registration_count
from portal.operations.deletion import DeletionRefused, open_batch, suppress_batch

DEFAULT_CHUNK = 10_000


def delete_all_registrations(data_source_id, *, actor_id, progress, reason="", suppress=False, restore_days=30):
    """Put every registration of the data source into one restorable batch; returns it.

    Registrations that arrive afterwards (API, webhooks) get higher ids and stay.
    """
    data_source = db.session.execute(
        select(DataSource).where(DataSource.id == data_source_id).with_for_update()
    ).scalar_one_or_none()
    if data_source is None:
        raise DeletionRefused("The data source no longer exists.")
    # No pass over the rows: the highest id comes from the primary key, the count from the
    # counter the operations keep, the period from the two ends of the (data source, date)
    # index (rows already in another deletion may widen it; it is what the batch spans).
    ends = select(Registration.occurred_on).where(Registration.data_source_id == data_source_id).limit(1)
    first_on = db.session.scalar(ends.order_by(Registration.occurred_on.asc()))
    last_on = db.session.scalar(ends.order_by(Registration.occurred_on.desc()))
    ceiling = db.session.scalar(select(func.max(Registration.id))) or 0
    batch = open_batch(data_source_id, actor_id, "all", {"all": True}, reason, restore_days)
    batch.ceiling_id, batch.count, batch.first_on, batch.last_on = (
        ceiling, data_source.registration_count, first_on, last_on)
    adjust_registration_count(data_source_id, -batch.count)
    if suppress:
        suppress_batch(batch, actor_id)
    audit.record("delete_all_registrations", data_source, actor_id, count=batch.count, reason=reason,
                 details={"batch_id": batch.id, "suppressed": suppress})
    progress.update(batch.count, total=batch.count)
    db.session.commit()
    return batch


def record_failed_delete_all(data_source_id, *, actor_id, error):
    """After the last failed attempt (nothing was changed: it is one transaction), say so in the log."""
    data_source = db.session.get(DataSource, data_source_id) if data_source_id else None
    if data_source is not None:
        audit.record("delete_all_registrations", data_source, actor_id, outcome="failed", details={"error": error})
        db.session.commit()


def delete_data_source(data_source_id, *, actor_id, progress, reason="", chunk_size=DEFAULT_CHUNK):
    """Remove a data source entirely: its rows in chunks, then the data source and its settings."""
    data_source = db.session.get(DataSource, data_source_id)
    if data_source is None:
        return {"deleted": progress.cursor.get("deleted", 0)}
    table = Registration.__table__
    total = db.session.scalar(select(func.count()).where(table.c.data_source_id == data_source_id))
    done = progress.cursor.get("deleted", 0)
    progress.update(done, total=done + total)
    low, high = db.session.execute(
        select(func.min(table.c.id), func.max(table.c.id)).where(table.c.data_source_id == data_source_id)).one()
    for start in range(low or 0, (high or -1) + 1, chunk_size):
        done += db.session.execute(
            delete(table).where(table.c.data_source_id == data_source_id, table.c.id >= start,
                                table.c.id < start + chunk_size)).rowcount
        progress.update(done, cursor={"deleted": done})
        db.session.commit()
    batches = select(DeletionBatch.id).where(DeletionBatch.data_source_id == data_source_id)
    db.session.execute(delete(HiddenRegistration.__table__).where(HiddenRegistration.batch_id.in_(batches)))
    db.session.execute(delete(Suppression.__table__).where(Suppression.data_source_id == data_source_id))
    audit.record("delete_data_source", data_source, actor_id, count=done, reason=reason)
    db.session.delete(data_source)
    db.session.commit()
    return {"deleted": done}


def mark_for_deletion(data_source):
    """Hide a data source from every page once its deletion is confirmed (committed by the caller)."""
    db.session.execute(update(DataSource).where(DataSource.id == data_source.id).values(pending_deletion=True))
