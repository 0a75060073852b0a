"""Deletions at the source found while importing a period.

SQL sources are reconciled: registrations of the imported period whose ids the source no
longer has are deleted here (into the restore window). A guard holds back a run that
would remove more than a configured share of the period, so a broken or emptied source
cannot wipe a data source without someone confirming it. Pipedrive Deals list their
deleted deals; those are deleted here too, for when webhooks are not available.
"""

from sqlalchemy import column, exists, func, select, table, text

from portal.connectors import DeletionMechanism, source_type_of
from portal.extensions import db
from portal.models import Registration
from portal.operations import audit
from portal.operations.counting import adjust_registration_count
from portal.operations.deletion import delete_at_source, hide_into_batch, open_batch
from portal.operations.listing import RegistrationFilter
from portal.operations.statements import is_postgresql

DEFAULT_MAX_SHARE = 0.2
STAGING = "reconcile_source_ids"


def apply_source_deletions(data_source, period, reader, config, report, *, confirmed=False, restore_days=30):
    """Delete here what the source says is gone for the period, as its connector declares."""
    capability = source_type_of(data_source.connector, data_source.source_type)
    if capability.deletion == DeletionMechanism.RECONCILIATION and hasattr(reader, "existing_ids"):
        reconcile_period(data_source, period, reader.existing_ids(config, period), report, confirmed=confirmed,
                         restore_days=restore_days)
    elif capability.deletion == DeletionMechanism.WEBHOOK and hasattr(reader, "deleted_ids"):
        for page in reader.deleted_ids(config, period):
            report.deleted_by_reconciliation += delete_at_source(data_source.id, page)


def _stage(external_ids):
    """Add a page of the source's ids to the staging table (COPY on PostgreSQL)."""
    if is_postgresql():
        connection = db.session.connection().connection.driver_connection
        with connection.cursor() as cursor, cursor.copy(f"COPY {STAGING} (external_id) FROM STDIN") as copy:
            for external_id in external_ids:
                copy.write_row((str(external_id),))
        return
    db.session.execute(text(f"INSERT INTO {STAGING} (external_id) VALUES (:e) ON CONFLICT DO NOTHING"),
                       [{"e": str(e)} for e in external_ids])


def reconcile_period(data_source, period, source_id_pages, report, *, confirmed=False, restore_days=30):
    """Hide the period's registrations whose external ids are not among the source's ids."""
    # The key gives the anti-join an index whatever the planner guesses about a temporary
    # table; the source's ids are unique (its id column), so COPY meets no repeats.
    db.session.execute(text(f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGING} (external_id VARCHAR(255) PRIMARY KEY)"))
    db.session.execute(text(f"DELETE FROM {STAGING}"))
    for page in source_id_pages:  # the source's ids wait in the database, not in memory
        if page:
            _stage(page)
    flt = RegistrationFilter(data_source.id, date_from=period.start, date_to=period.end)
    staged = table(STAGING, column("external_id"))

    def gone(t):
        # NOT EXISTS, not NOT IN: PostgreSQL anti-joins it at any size (NOT IN over a large
        # subquery is checked row by row).
        return [*flt.clauses(t), ~exists().where(staged.c.external_id == t.external_id)]

    missing = db.session.scalar(select(func.count()).select_from(Registration).where(*gone(Registration)))
    in_period = db.session.scalar(select(func.count()).select_from(Registration).where(*flt.clauses()))
    max_share = float((data_source.settings or {}).get("reconcile_max_share", DEFAULT_MAX_SHARE))
    if missing and not confirmed and missing > max_share * in_period:
        report.reconciliation_held_back = missing
        audit.record("reconcile", data_source, None, count=missing, outcome="held back",
                     details={"period": [period.start.isoformat(), period.end.isoformat()],
                              "in_period": in_period, "max_share": max_share})
    elif missing:
        batch = open_batch(data_source.id, None, "source", {"reconciled": [period.start.isoformat(),
                                                                            period.end.isoformat()]},
                           "No longer in the source", restore_days)
        batch.count, batch.first_on, batch.last_on = hide_into_batch(gone, batch.id)
        adjust_registration_count(data_source.id, -batch.count)
        report.deleted_by_reconciliation += batch.count
        audit.record("reconcile", data_source, None, count=batch.count, details={"batch_id": batch.id})
    db.session.execute(text(f"DROP TABLE {STAGING}"))
    db.session.commit()
