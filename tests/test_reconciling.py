"""Deletions at the source picked up while importing: SQL reconciliation with its guard, and
Pipedrive's list of deleted deals."""

from datetime import date

import httpx
import pytest
import sqlalchemy as sa

from portal.connectors import reader_for
from portal.connectors.base import Period
from portal.connectors.sql import SqlReader
from portal.demo import sales_rows, write_source_database
from portal.extensions import db
from portal.models import AuditEvent, DataSource, DeletionBatch, Field, Organization, Registration
from portal.operations.deletion import restore_batch
from portal.operations.importing import import_period
from portal.operations.listing import RegistrationFilter
from portal.operations.progress import NO_PROGRESS, Progress

ROWS = sales_rows(today=date(2026, 12, 31))
QUARTER = Period(date(2025, 1, 1), date(2025, 3, 31))


def live(data_source_id):
    return set(db.session.scalars(sa.select(Registration.external_id).where(*RegistrationFilter(data_source_id).clauses())))


@pytest.fixture
def original(request, db_backend, tmp_path):
    """The demo's sales table in a real original database (SQLite file, or a PostgreSQL table)."""
    if db_backend == "postgresql":
        url = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite:///{tmp_path / 'source.sqlite3'}"
    write_source_database(url, ROWS)
    yield url
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS sales"))
    engine.dispose()


def sql_source(url, **settings):
    org = db.session.scalar(sa.select(Organization).where(Organization.name == "Acme"))
    ds = DataSource(organization=org, name="Sales", connector="sql", source_type="table", registration_count=0,
                    settings={"table": "sales", "id_column": "id", "date_column": "sold_at",
                              "employee_column": "employee_email", **settings}, secrets={"url": url})
    ds.fields = [Field(key="amount", label="Amount", type="number"), Field(key="product", label="Product")]
    db.session.add(ds)
    db.session.commit()
    return ds


def run(ds, period=QUARTER, **options):
    return import_period(ds.id, period, reader=reader_for("sql"), progress=NO_PROGRESS, **options)


def source_execute(url, statement):
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(statement))
    engine.dispose()


in_quarter = sorted(int(e) for e, day, *_ in ROWS if QUARTER.start <= day <= QUARTER.end)


@pytest.mark.parametrize("db_backend", ["sqlite", "postgresql"])
def test_rows_deleted_from_the_source_are_deleted_here_on_the_next_import(app, world, original):
    ds = sql_source(original)
    run(ds)
    everything = live(ds.id)
    gone = in_quarter[:3]
    source_execute(original, f"DELETE FROM sales WHERE id IN ({', '.join(map(str, gone))})")
    report = run(ds)
    assert report.deleted_by_reconciliation == 3 and report.unchanged == len(in_quarter) - 3
    assert live(ds.id) == everything - {str(i) for i in gone}
    assert db.session.get(DataSource, ds.id).registration_count == len(in_quarter) - 3
    batch = db.session.scalar(sa.select(DeletionBatch).where(DeletionBatch.data_source_id == ds.id))
    assert batch.kind == "source" and batch.count == 3
    assert run(ds).deleted_by_reconciliation == 0  # a second run finds nothing more
    restore_batch(batch.id, actor_id=world.lead)
    assert live(ds.id) == everything


class RereadCountingReader(SqlReader):
    """The real SQL connector, counting how often the reconciliation reads the source's ids again."""

    def __init__(self):
        self.rereads = 0

    def existing_ids(self, config, period):
        self.rereads += 1
        yield from super().existing_ids(config, period)


class PoolReplacingProgress(Progress):
    """Replaces the engine's pool after the first batch, as a pool recycle or a reconnect does:
    the next batch runs on another connection, which has none of the ids gathered so far."""

    def __init__(self):
        self.replaced = False

    def update(self, done, total=None, cursor=None):
        if done and not self.replaced:
            db.session.commit()  # the batch (it would be committed next), so no connection is checked out
            db.engine.dispose()  # closes the pooled ones: the next batch connects anew
            self.replaced = True


@pytest.mark.parametrize("db_backend", ["sqlite", "postgresql"])
def test_reconciliation_uses_the_ids_the_import_read_and_reads_them_again_only_after_a_new_connection(
        app, world, original):
    ds = sql_source(original)
    run(ds)
    gone = in_quarter[:2]
    source_execute(original, f"DELETE FROM sales WHERE id IN ({', '.join(map(str, gone))})")
    reader = RereadCountingReader()
    report = import_period(ds.id, QUARTER, reader=reader, progress=NO_PROGRESS, batch_size=40)
    assert reader.rereads == 0  # the ids came from the import's own read
    assert report.deleted_by_reconciliation == 2 and report.unchanged == len(in_quarter) - 2
    assert live(ds.id) == {str(i) for i in in_quarter[2:]}

    source_execute(original, f"DELETE FROM sales WHERE id = {in_quarter[2]}")
    progress = PoolReplacingProgress()
    report = import_period(ds.id, QUARTER, reader=reader, progress=progress, batch_size=40)
    assert progress.replaced and reader.rereads == 1  # the gathered ids were incomplete: read again
    assert report.deleted_by_reconciliation == 1  # not the ids of the batches after the new connection
    assert live(ds.id) == {str(i) for i in in_quarter[3:]}
    assert db.session.get(DataSource, ds.id).registration_count == len(in_quarter) - 3


@pytest.mark.parametrize("db_backend", ["sqlite", "postgresql"])
def test_reconciliation_touches_nothing_outside_the_period(app, world, original):
    ds = sql_source(original)
    run(ds, Period(date(2025, 1, 1), date(2025, 6, 30)))
    before = live(ds.id)
    april = [int(e) for e, day, *_ in ROWS if date(2025, 4, 1) <= day <= date(2025, 4, 30)]
    source_execute(original, f"DELETE FROM sales WHERE id IN ({', '.join(map(str, april))})")
    assert run(ds).deleted_by_reconciliation == 0
    assert live(ds.id) == before


@pytest.mark.parametrize("db_backend", ["sqlite", "postgresql"])
def test_the_guard_holds_back_a_run_that_would_remove_too_much_until_confirmed(app, world, original):
    ds = sql_source(original, reconcile_max_share=0.2)
    run(ds)
    source_execute(original, "DELETE FROM sales")  # a broken or emptied source
    report = run(ds)
    assert report.reconciliation_held_back == len(in_quarter) and report.deleted_by_reconciliation == 0
    assert len(live(ds.id)) == len(in_quarter)
    event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "reconcile"))
    assert event.outcome == "held back"
    confirmed = run(ds, confirm_removals=True)
    assert confirmed.deleted_by_reconciliation == len(in_quarter) and live(ds.id) == set()


def test_a_pipedrive_import_picks_up_deals_pipedrive_lists_as_deleted(app, world, pipedrive_sandbox):
    org = db.session.scalar(sa.select(Organization).where(Organization.name == "Acme"))
    ds = DataSource(organization=org, name="PD", connector="pipedrive", source_type="deals", registration_count=0,
                    settings={"base_url": pipedrive_sandbox.base_url}, secrets={"api_token": "sandbox-token"})
    db.session.add(ds)
    db.session.commit()
    period = Period(date(2025, 1, 1), date(2025, 2, 28))
    first = import_period(ds.id, period, reader=reader_for("pipedrive"), progress=NO_PROGRESS)
    imported = live(ds.id)
    assert first.new == len(imported) > 0
    victim = sorted(imported)[0]
    response = httpx.delete(f"{pipedrive_sandbox.base_url}/api/v2/deals/{victim}", headers={"x-api-token": "sandbox-token"})
    assert response.status_code == 200  # no webhook is registered: only the deleted listing tells
    again = import_period(ds.id, period, reader=reader_for("pipedrive"), progress=NO_PROGRESS)
    assert again.deleted_by_reconciliation == 1 and live(ds.id) == imported - {victim}


@pytest.mark.parametrize("connector, source_type", [("pipedrive", "activities")])
def test_activities_propagate_nothing(app, world, pipedrive_sandbox, connector, source_type):
    org = db.session.scalar(sa.select(Organization).where(Organization.name == "Acme"))
    ds = DataSource(organization=org, name="PA", connector=connector, source_type=source_type, registration_count=0,
                    settings={"base_url": pipedrive_sandbox.base_url}, secrets={"api_token": "sandbox-token"})
    db.session.add(ds)
    db.session.commit()
    period = Period(date(2025, 1, 1), date(2025, 1, 31))
    import_period(ds.id, period, reader=reader_for(connector), progress=NO_PROGRESS)
    imported = live(ds.id)
    victim = sorted(imported)[0]
    httpx.delete(f"{pipedrive_sandbox.base_url}/api/v2/activities/{victim}", headers={"x-api-token": "sandbox-token"})
    report = import_period(ds.id, period, reader=reader_for(connector), progress=NO_PROGRESS)
    assert report.deleted_by_reconciliation == 0 and live(ds.id) == imported
