"""The registration counter that pages show instead of counting rows."""

from sqlalchemy import func, select, update

from portal.extensions import db
from portal.models import DataSource, Registration
from portal.operations.listing import RegistrationFilter


def recount_registrations(data_source_id, progress):
    """Count the data source's registrations and store the total on it."""
    if data_source_id is None or db.session.get(DataSource, data_source_id) is None:
        raise LookupError("The data source no longer exists.")
    progress.update(0, total=1)
    total = recount_live(data_source_id)
    progress.update(1, total=1)
    db.session.commit()
    return {"registrations": total}


def recount_live(data_source_id):
    """Set the counter to the number of live registrations (in the caller's transaction), and return it."""
    total = db.session.scalar(
        select(func.count()).select_from(Registration).where(*RegistrationFilter(data_source_id).clauses())
    )
    db.session.execute(update(DataSource).where(DataSource.id == data_source_id).values(registration_count=total))
    return total


def adjust_registration_count(data_source_id, delta):
    """Move the counter by delta in the caller's transaction (atomic in SQL, not in Python)."""
    if delta:
        db.session.execute(
            update(DataSource)
            .where(DataSource.id == data_source_id)
            .values(registration_count=DataSource.registration_count + delta)
        )
