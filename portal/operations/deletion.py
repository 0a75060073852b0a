"""Deleting registrations into the restore window, restoring them, purging them, suppressing ids.

A deleted registration stays in its table with a row in hidden_registration naming its
deletion batch; every read leaves hidden rows out (listing.is_live). Each operation is
set-based: a fixed number of statements whatever the number of rows.
"""

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import BigInteger, any_, bindparam, delete, exists, func, insert, literal, select
from sqlalchemy.dialects.postgresql import ARRAY

from portal.extensions import db
from portal.models import (
    BatchException,
    DataSource,
    DeletionBatch,
    Employee,
    HiddenRegistration,
    Registration,
    Suppression,
    utcnow,
)
from portal.operations import audit
from portal.operations.counting import adjust_registration_count, recount_live
from portal.operations.listing import RegistrationFilter, filter_batch_covers, is_live
from portal.operations.statements import insert_counting, is_postgresql

class DeletionRefused(Exception):
    """A deletion or restore that must not happen; the message is for the person who asked."""


@dataclass(frozen=True)
class Selection:
    """Which registrations of one data source: ticked ids, or all matching a filter but some."""

    filter: RegistrationFilter
    ids: frozenset = None  # None: every registration matching the filter
    excluded_ids: frozenset = field(default_factory=frozenset)

    @property
    def data_source_id(self):
        """The data source every selected registration belongs to."""
        return self.filter.data_source_id

    @property
    def is_all_matching(self):
        """Selected as a filter rather than as ids."""
        return self.ids is None

    @property
    def is_empty(self):
        """Nothing ticked (an all-matching selection is not empty until counted)."""
        return self.ids is not None and not self.ids

    def clauses(self, table=Registration):
        """WHERE clauses selecting these registrations in a registration-shaped table."""
        where = self.filter.clauses(table)
        if self.ids is not None:
            where.append(_id_in(table.id, self.ids))
        if self.excluded_ids:
            where.append(~_id_in(table.id, self.excluded_ids))
        return where

    def to_dict(self):
        """JSON form, for job parameters and the batch's record."""
        return {
            "filter": self.filter.to_dict(),
            "ids": sorted(self.ids) if self.ids is not None else None,
            "excluded_ids": sorted(self.excluded_ids),
        }

    @classmethod
    def from_dict(cls, data):
        """The inverse of to_dict."""
        ids = data.get("ids")
        return cls(
            filter=RegistrationFilter.from_dict(data["filter"]),
            ids=frozenset(ids) if ids is not None else None,
            excluded_ids=frozenset(data.get("excluded_ids") or ()),
        )


def _id_in(column, ids):
    """column IN ids; on PostgreSQL one array parameter rather than one parameter per id."""
    if is_postgresql():
        return column == any_(bindparam("ids", sorted(ids), type_=ARRAY(BigInteger), unique=True))
    return column.in_(sorted(ids))


@dataclass(frozen=True)
class SelectionSummary:
    """What a confirmation tells before deleting: how many, over which period, whose."""

    count: int
    first_on: object
    last_on: object
    employees: list  # [(name, active, count)], most registrations first


def summarize(selection):
    """Count the selection and describe its period and employees (two queries)."""
    where = selection.clauses()
    count, first_on, last_on = db.session.execute(
        select(func.count(), func.min(Registration.occurred_on), func.max(Registration.occurred_on)).where(*where)
    ).one()
    employees = db.session.execute(
        select(func.coalesce(Employee.name, "No employee"), func.coalesce(Employee.active, True), func.count())
        .select_from(Registration)
        .outerjoin(Employee, Employee.id == Registration.employee_id)
        .where(*where)
        .group_by(Employee.id, Employee.name, Employee.active)
        .order_by(func.count().desc())
    ).all()
    return SelectionSummary(count, first_on, last_on, [tuple(row) for row in employees])


def delete_registrations(selection, *, actor_id, expected_count, kind="selected", reason="",
                         suppress=False, restore_days=30):
    """Hide the selected registrations in a new deletion batch; refuse if the selection changed."""
    if selection.is_empty or expected_count < 1:
        raise DeletionRefused("Nothing is selected: tick the registrations to delete first.")
    data_source = db.session.get(DataSource, selection.data_source_id)
    batch = open_batch(data_source.id, actor_id, kind, selection.to_dict(), reason, restore_days)
    if selection.is_all_matching:
        hidden, batch.first_on, batch.last_on = hide_by_filter(selection, batch)
    else:
        hidden, batch.first_on, batch.last_on = hide_into_batch(selection.clauses, batch.id)
    if hidden != expected_count:
        db.session.rollback()
        raise DeletionRefused(
            f"The selection changed since it was shown: {expected_count:,} were selected, "
            f"{hidden:,} of them can be deleted now. Nothing was deleted; check the selection and try again."
        )
    batch.count = hidden
    adjust_registration_count(data_source.id, -hidden)
    if suppress:
        suppress_batch(batch, actor_id)
    audit.record("delete_registrations", data_source, actor_id, count=hidden, reason=reason,
                 details={"batch_id": batch.id, "kind": kind, "selection": selection.to_dict(), "suppressed": suppress})
    db.session.commit()
    return batch


def open_batch(data_source_id, actor_id, kind, selection, reason, restore_days):
    """A new, empty deletion batch whose restore window starts now."""
    now = utcnow()
    batch = DeletionBatch(
        data_source_id=data_source_id, created_by_id=actor_id, kind=kind, status="deleted", count=0,
        selection=selection, reason=reason, created_at=now, expires_at=now + timedelta(days=restore_days),
    )
    db.session.add(batch)
    db.session.flush()
    return batch


def hide_into_batch(clauses, batch_id):
    """Hide the live registrations that clauses(table columns) select; returns (how many, first day, last day)."""
    table, hidden = Registration.__table__, HiddenRegistration.__table__
    if is_postgresql():
        # One pass over the rows: they are read once, hidden, counted and dated together.
        chosen = select(table.c.id, table.c.occurred_on).where(*clauses(table.c)).cte("chosen")
        hid = (insert(hidden).from_select(["registration_id", "batch_id"], select(chosen.c.id, literal(batch_id)))
               .returning(hidden.c.registration_id).cte("hid"))
        count = select(func.count()).select_from(hid).scalar_subquery()
        return tuple(db.session.execute(
            select(count, func.min(chosen.c.occurred_on), func.max(chosen.c.occurred_on)).select_from(chosen)).one())
    count = insert_counting(
        insert(hidden).from_select(["registration_id", "batch_id"],
                                   select(table.c.id, literal(batch_id)).where(*clauses(table.c))),
        hidden.c.registration_id,
    )
    first_on, last_on = db.session.execute(
        select(func.min(table.c.occurred_on), func.max(table.c.occurred_on)).where(*in_batch(batch_id, table.c))
    ).one()
    return count, first_on, last_on


def hide_by_filter(selection, batch):
    """Hide everything matching the selection's filter by recording the filter on the batch.

    No row is written per registration, so this costs one counting pass over the matching
    rows; rows that arrive later have higher ids than the ceiling and stay visible.
    """
    flt = selection.filter
    count, first_on, last_on, ceiling = db.session.execute(
        select(func.count(), func.min(Registration.occurred_on), func.max(Registration.occurred_on),
               func.max(Registration.id)).where(*selection.clauses())
    ).one()
    batch.ceiling_id = ceiling or 0
    batch.hides_from, batch.hides_to, batch.hides_employee_id = flt.date_from, flt.date_to, flt.employee_id
    if selection.excluded_ids:
        db.session.execute(insert(BatchException.__table__), [
            {"batch_id": batch.id, "registration_id": i} for i in sorted(selection.excluded_ids)])
    return count, first_on, last_on


def in_batch(batch_id, table=Registration):
    """WHERE clauses for the registrations a batch hides by hidden_registration rows."""
    return [table.id.in_(select(HiddenRegistration.registration_id).where(HiddenRegistration.batch_id == batch_id))]


def rows_of(batch, table=Registration):
    """WHERE clauses for every registration a batch hides, by rows or by its filter."""
    if not batch.hides_by_filter:
        return in_batch(batch.id, table)
    where = [table.data_source_id == batch.data_source_id, table.id <= batch.ceiling_id,
             ~exists().where(BatchException.batch_id == batch.id, BatchException.registration_id == table.id)]
    if batch.hides_from:
        where.append(table.occurred_on >= batch.hides_from)
    if batch.hides_to:
        where.append(table.occurred_on <= batch.hides_to)
    if batch.hides_employee_id:
        where.append(table.employee_id == batch.hides_employee_id)
    return where


def except_from_filter_batches(registration_clauses, newer_than=None):
    """Registrations coming back must not stay hidden by a filter batch that did not delete them."""
    batch, table = DeletionBatch.__table__.c, Registration.__table__.c
    where = [*registration_clauses(table), *filter_batch_covers(batch, table)]
    if newer_than is not None:
        where.append(batch.id > newer_than)
    db.session.execute(insert(BatchException.__table__).from_select(
        ["batch_id", "registration_id"], select(batch.id, table.id).where(*where)))


def suppress_batch(batch, actor_id):
    """Record the batch's external ids as suppressed, so imports skip them."""
    already = select(Suppression.external_id).where(Suppression.data_source_id == batch.data_source_id)
    db.session.execute(
        insert(Suppression).from_select(
            ["data_source_id", "external_id", "created_by_id", "created_at"],
            select(Registration.data_source_id, Registration.external_id, literal(actor_id), literal(utcnow()))
            .where(*rows_of(batch), Registration.external_id.not_in(already))
            .distinct(),
        )
    )


def restore_batch(batch_id, *, actor_id, reason=""):
    """Bring a batch's registrations back exactly (they never moved); twice changes nothing."""
    batch = db.session.execute(
        select(DeletionBatch).where(DeletionBatch.id == batch_id).with_for_update()
    ).scalar_one_or_none()
    if batch is None:
        raise DeletionRefused("That deletion does not exist.")
    if batch.status == "restored":
        db.session.rollback()
        return 0
    if batch.status != "deleted":
        raise DeletionRefused("That deletion is past its restore window; its registrations are gone.")
    data_source = db.session.get(DataSource, batch.data_source_id)
    db.session.execute(
        delete(Suppression.__table__).where(
            Suppression.data_source_id == batch.data_source_id,
            Suppression.external_id.in_(select(Registration.external_id).where(*rows_of(batch))),
        )
    )
    except_from_filter_batches(lambda t: rows_of(batch, t), newer_than=batch.id)
    if not batch.hides_by_filter:
        db.session.execute(delete(HiddenRegistration.__table__).where(HiddenRegistration.batch_id == batch.id))
    batch.status = "restored"
    batch.restored_at = utcnow()
    db.session.flush()
    # Rows of the batch that another, older deletion also holds stay deleted: count what came back.
    before = data_source.registration_count
    restored = recount_live(data_source.id) - before
    audit.record("restore_registrations", data_source, actor_id, count=restored, reason=reason,
                 details={"batch_id": batch.id, "deleted": batch.count})
    db.session.commit()
    return restored


# Rows a purge deletes per transaction: each chunk is one short index-range DELETE.
PURGE_CHUNK = 100_000


def purge_expired_batches(*, now=None, chunk_size=PURGE_CHUNK):
    """Physically remove batches past their restore window, in committed chunks by id range."""
    now = now or utcnow()
    purged = 0
    expired = db.session.scalars(
        select(DeletionBatch.id).where(DeletionBatch.status == "deleted", DeletionBatch.expires_at <= now)
    ).all()
    for batch_id in expired:
        purged += purge_batch(batch_id, chunk_size=chunk_size)
    return purged


def purge_batch(batch_id, *, chunk_size=PURGE_CHUNK, actor_id=None):
    """Delete one batch's registrations for good, chunk by chunk of ids, then mark it purged."""
    batch = db.session.get(DeletionBatch, batch_id)
    table, hidden = Registration.__table__, HiddenRegistration.__table__
    if batch.hides_by_filter:
        low = db.session.scalar(select(func.min(table.c.id)).where(table.c.data_source_id == batch.data_source_id))
        high = batch.ceiling_id
    else:
        low, high = db.session.execute(
            select(func.min(hidden.c.registration_id), func.max(hidden.c.registration_id))
            .where(hidden.c.batch_id == batch_id)).one()
    removed = 0
    for start in range(low or 0, (high or -1) + 1, chunk_size):
        end = start + chunk_size
        if batch.hides_by_filter:
            chunk = [table.c.id >= start, table.c.id < end, *rows_of(batch, table.c)]
        else:
            # The range goes inside the subquery too, or each chunk reads all the batch's rows.
            in_range = [hidden.c.batch_id == batch_id, hidden.c.registration_id >= start, hidden.c.registration_id < end]
            chunk = [table.c.id.in_(select(hidden.c.registration_id).where(*in_range))]
        removed += db.session.execute(delete(table).where(*chunk)).rowcount
        if not batch.hides_by_filter:
            db.session.execute(delete(hidden).where(*in_range))
        db.session.commit()
    db.session.execute(delete(BatchException.__table__).where(BatchException.batch_id == batch_id))
    batch.status = "purged"
    batch.purged_at = utcnow()
    audit.record("purge_registrations", db.session.get(DataSource, batch.data_source_id), actor_id,
                 count=removed, details={"batch_id": batch_id})
    db.session.commit()
    return removed


def revive(data_source_id, external_ids):
    """An import that finds these external ids at the source brings them back from the restore window."""
    if not external_ids or not has_restore_window(data_source_id):
        return 0
    ids = sorted(db.session.scalars(select(Registration.id).where(
        Registration.data_source_id == data_source_id, Registration.external_id.in_(sorted(external_ids)),
        ~is_live())))
    if ids:
        db.session.execute(delete(HiddenRegistration.__table__).where(HiddenRegistration.registration_id.in_(ids)))
        except_from_filter_batches(lambda t: [t.id.in_(ids)])
        adjust_registration_count(data_source_id, len(ids))
    return len(ids)


def has_restore_window(data_source_id):
    """Whether anything of the data source is deleted but restorable (most imports find nothing)."""
    return db.session.scalar(select(exists().where(DeletionBatch.data_source_id == data_source_id,
                                                   DeletionBatch.status == "deleted")))


def remove_suppression(data_source, suppression_id, *, actor_id):
    """Let imports bring an external id back again."""
    suppression = db.session.get(Suppression, suppression_id)
    if suppression is None or suppression.data_source_id != data_source.id:
        raise DeletionRefused("That external id is not suppressed in this data source.")
    db.session.delete(suppression)
    audit.record("remove_suppression", data_source, actor_id, count=1,
                 details={"external_id": suppression.external_id})
    db.session.commit()
    return suppression.external_id


def live_batches(data_source_id):
    """The data source's deletions, newest first, with whether they can still be restored."""
    return db.session.scalars(
        select(DeletionBatch).where(DeletionBatch.data_source_id == data_source_id)
        .order_by(DeletionBatch.created_at.desc(), DeletionBatch.id.desc())
    ).all()


def delete_at_source(data_source_id, external_ids):
    """A deletion reported by the source (webhook, deleted listing): hide those registrations here too.

    Unknown or already deleted ids are ignored, so a replayed or duplicated event changes nothing.
    """
    flt = RegistrationFilter(data_source_id)
    ids = frozenset(db.session.scalars(select(Registration.id).where(
        *flt.clauses(), Registration.external_id.in_(sorted({str(e) for e in external_ids})))))
    if not ids:
        db.session.rollback()
        return 0
    batch = delete_registrations(Selection(flt, ids=ids), actor_id=None, expected_count=len(ids), kind="source",
                                 reason="Deleted at the source")
    return batch.count
