"""Which data sources a scheduled sync imports, and for which days."""

from datetime import date, timedelta

from sqlalchemy import select

from portal.connectors import source_type_of
from portal.connectors.base import Period
from portal.extensions import db
from portal.models import DataSource


def recent_period(days, today=None):
    """The last `days` days up to today."""
    today = today or date.today()
    return Period(today - timedelta(days=days - 1), today)


def integrations_to_sync():
    """Integrations that import periods and have not switched scheduled sync off in their settings."""
    candidates = db.session.scalars(select(DataSource).where(DataSource.pending_deletion.is_(False),
                                                             DataSource.connector != "manual"))
    return [ds for ds in candidates
            if source_type_of(ds.connector, ds.source_type).imports_period
            and (ds.settings or {}).get("scheduled_sync", True)]
