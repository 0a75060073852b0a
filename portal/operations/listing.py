"""Which registrations match a filter, and pages of them by keyset (never by OFFSET)."""

from dataclasses import asdict, dataclass
from datetime import date

from sqlalchemy import and_, exists, func, or_, select, tuple_
from sqlalchemy.orm import joinedload

from portal.extensions import db
from portal.models import BatchException, DeletionBatch, HiddenRegistration, Registration


def is_live(table=Registration):
    """Not in the restore window: every read of registrations goes through this."""
    return and_(~exists().where(HiddenRegistration.registration_id == table.id),
                ~exists().where(*filter_batch_covers(DeletionBatch.__table__.c, table)))


def filter_batch_covers(batch, table):
    """WHERE clauses: the filter batch `batch` (deletion_batch columns) hides registration `table`."""
    return [
        batch.data_source_id == table.data_source_id,
        batch.status == "deleted",
        batch.ceiling_id.is_not(None),
        table.id <= batch.ceiling_id,
        or_(batch.hides_from.is_(None), table.occurred_on >= batch.hides_from),
        or_(batch.hides_to.is_(None), table.occurred_on <= batch.hides_to),
        or_(batch.hides_employee_id.is_(None), table.employee_id == batch.hides_employee_id),
        # Correlated two levels up (to the registration being read), not to a fresh copy of it.
        ~exists().where(BatchException.batch_id == batch.id, BatchException.registration_id == table.id)
        .correlate_except(BatchException),
    ]


@dataclass(frozen=True)
class RegistrationFilter:
    """The registrations of one data source, narrowed by period and employee."""

    data_source_id: int
    date_from: date | None = None
    date_to: date | None = None
    employee_id: int | None = None

    def clauses(self, table=Registration):
        """WHERE clauses for this filter against the registration table (ORM class or Core columns)."""
        where = [table.data_source_id == self.data_source_id, is_live(table)]
        if self.date_from:
            where.append(table.occurred_on >= self.date_from)
        if self.date_to:
            where.append(table.occurred_on <= self.date_to)
        if self.employee_id:
            where.append(table.employee_id == self.employee_id)
        return where

    @property
    def is_narrowed(self):
        """Whether anything beyond the data source narrows it."""
        return bool(self.date_from or self.date_to or self.employee_id)

    def to_dict(self):
        """A JSON-friendly form, for job parameters and audit events."""
        data = asdict(self)
        for key in ("date_from", "date_to"):
            data[key] = data[key].isoformat() if data[key] else None
        return data

    @classmethod
    def from_dict(cls, data):
        """The inverse of to_dict."""
        return cls(
            data_source_id=int(data["data_source_id"]),
            date_from=date.fromisoformat(data["date_from"]) if data.get("date_from") else None,
            date_to=date.fromisoformat(data["date_to"]) if data.get("date_to") else None,
            employee_id=int(data["employee_id"]) if data.get("employee_id") else None,
        )


@dataclass(frozen=True)
class Page:
    """One page of registrations and the cursors around it."""

    rows: list
    next_cursor: str | None
    previous_cursor: str | None


EMPTY_PAGE = Page(rows=[], next_cursor=None, previous_cursor=None)


def encode_cursor(registration):
    """A stable position in (occurred_on, id) order."""
    return f"{registration.occurred_on.isoformat()}.{registration.id}"


def decode_cursor(token):
    """Parse a cursor token; ValueError if it is not one."""
    day, _, row_id = token.partition(".")
    return date.fromisoformat(day), int(row_id)


def page_of_registrations(flt, size, after=None, before=None):
    """The page after (or before) a cursor, newest first."""
    query = (
        select(Registration)
        .where(*flt.clauses())
        .options(joinedload(Registration.employee))
    )
    position = tuple_(Registration.occurred_on, Registration.id)
    if before:
        rows = db.session.scalars(
            query.where(position > tuple_(*decode_cursor(before)))
            .order_by(Registration.occurred_on.asc(), Registration.id.asc())
            .limit(size + 1)
        ).all()
        has_more_before = len(rows) > size
        rows = list(reversed(rows[:size]))
        return Page(
            rows=rows,
            next_cursor=encode_cursor(rows[-1]) if rows else None,
            previous_cursor=encode_cursor(rows[0]) if rows and has_more_before else None,
        )
    if after:
        query = query.where(position < tuple_(*decode_cursor(after)))
    rows = db.session.scalars(
        query.order_by(Registration.occurred_on.desc(), Registration.id.desc()).limit(size + 1)
    ).all()
    has_more = len(rows) > size
    rows = rows[:size]
    return Page(
        rows=rows,
        next_cursor=encode_cursor(rows[-1]) if rows and has_more else None,
        previous_cursor=encode_cursor(rows[0]) if rows and after else None,
    )


def count_matching(flt):
    """How many registrations match; only asked for when a filter narrows the view."""
    return db.session.scalar(select(func.count()).select_from(Registration).where(*flt.clauses()))


def period_of(flt):
    """First and last day of the matching registrations (index lookups for a whole data source)."""
    return db.session.execute(
        select(func.min(Registration.occurred_on), func.max(Registration.occurred_on)).where(*flt.clauses())
    ).one()
