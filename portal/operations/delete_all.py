"""Deleting every registration of a data source, or the data source itself, in committed chunks.

Both run as resumable background jobs: each chunk commits together with the cursor that
says where the next one starts, so a killed worker's rerun continues where it stopped and
ends with the same result. Memory stays constant: rows never travel through Python.
"""

from sqlalchemy import delete, func, select, update

from portal.extensions import db
from portal.models import DataSource, DeletionBatch, HiddenRegistration, Registration, Suppression
from portal.operations import audit
from portal.operations.counting import adjust_registration_count
from portal.operations.deletion import DeletionRefused, hide_into_batch, open_batch, suppress_batch
from portal.operations.listing import is_live

DEFAULT_CHUNK = 10_000


def delete_all_registrations(data_source_id, *, actor_id, progress, reason="", suppress=False,
                             restore_days=30, chunk_size=DEFAULT_CHUNK):
    """Put every registration that existed at the start into one restorable batch; returns it.

    Registrations that arrive while it runs (API, webhooks) get higher ids and stay.
    """
    cursor = progress.cursor or _begin(data_source_id, actor_id, progress, reason, restore_days)
    batch = db.session.get(DeletionBatch, cursor["batch_id"])
    ceiling = cursor["ceiling"]
    start = cursor["next_id"]
    while start <= ceiling:
        end = min(start + chunk_size, ceiling + 1)
        batch.count += hide_into_batch(
            lambda t: [t.data_source_id == data_source_id, t.id >= start, t.id < end, is_live(t)], batch.id)[0]
        start = end
        progress.update(batch.count, cursor={**cursor, "next_id": start})
        db.session.commit()
    return _finish(data_source_id, batch, actor_id, suppress, reason)


def _begin(data_source_id, actor_id, progress, reason, restore_days):
    """Hide the registrations at once, open the batch, and write the first cursor."""
    data_source = db.session.execute(
        select(DataSource).where(DataSource.id == data_source_id).with_for_update()
    ).scalar_one_or_none()
    if data_source is None:
        raise DeletionRefused("The data source no longer exists.")
    low, high, total, first_on, last_on = db.session.execute(
        select(func.min(Registration.id), func.max(Registration.id), func.count(),
               func.min(Registration.occurred_on), func.max(Registration.occurred_on))
        .where(Registration.data_source_id == data_source_id, is_live())
    ).one()
    batch = open_batch(data_source_id, actor_id, "all", {"all": True}, reason, restore_days)
    batch.first_on, batch.last_on = first_on, last_on
    if high is not None:
        data_source.hidden_through_id = high
        adjust_registration_count(data_source_id, -total)
    cursor = {"batch_id": batch.id, "ceiling": high or 0, "next_id": low or 1, "total": total}
    audit.record("delete_all_started", data_source, actor_id, count=total, reason=reason,
                 details={"batch_id": batch.id})
    progress.update(0, total=total, cursor=cursor)
    db.session.commit()
    return cursor


def _finish(data_source_id, batch, actor_id, suppress, reason):
    """Show the data source again (now without the old rows) and close the batch."""
    if suppress:
        suppress_batch(batch, actor_id)
    data_source = db.session.get(DataSource, data_source_id)
    data_source.hidden_through_id = None
    audit.record("delete_all_registrations", data_source, actor_id, count=batch.count, reason=reason,
                 details={"batch_id": batch.id, "suppressed": suppress})
    db.session.commit()
    return batch


def abandon_delete_all(data_source_id, *, cursor, actor_id, error):
    """After the last failed attempt: what was not moved yet is live and visible again."""
    data_source = db.session.get(DataSource, data_source_id)
    if data_source is None:
        return
    if data_source.hidden_through_id is not None:
        data_source.hidden_through_id = None
        data_source.registration_count = db.session.scalar(
            select(func.count()).where(Registration.data_source_id == data_source_id, is_live()))
    audit.record("delete_all_registrations", data_source, actor_id, outcome="failed",
                 details={"batch_id": (cursor or {}).get("batch_id"), "error": error})
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
