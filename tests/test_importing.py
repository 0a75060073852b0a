"""Importing a period from the original source: real SQLite and PostgreSQL original databases and
the Pipedrive sandbox, on SQLite and PostgreSQL portals; bounded, idempotent, resumable after a kill."""

import os
import sqlite3
import threading
import time
import uuid
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from portal.connectors.base import ConnectorError, Period, SourceRecord
from portal.connectors.sql import SqlReader
from portal.demo import ACME_EMPLOYEES, deal_rows, sales_rows, write_source_database
from portal.extensions import db
from portal.jobs import JobAlreadyRunning
from portal.jobs.delete_all import start_delete_all
from portal.jobs.importing import start_import
from portal.jobs.recovery import requeue_abandoned
from portal.models import (
    AuditEvent,
    DataSource,
    Employee,
    Field,
    Job,
    JobStatus,
    Registration,
    Suppression,
    User,
)
from portal.operations.importing import import_period
from portal.operations.progress import NO_PROGRESS
from sandbox.pipedrive import make_server
from tests.conftest import kill_worker_and_horse, run_queued_jobs

both_databases = pytest.mark.parametrize("db_backend", ["sqlite", "postgresql"])

SALES_SETTINGS = {"table": "sales", "id_column": "id", "date_column": "sold_at", "employee_column": "employee_email"}
# The demo's sales of 2025, plus rows on each side of each end of the first quarter.
ROWS = sales_rows(today=date(2025, 12, 31)) + [
    ("90001", date(2024, 12, 31), "alice@acme.test", {"product": "Team plan", "amount": 1}),
    ("90002", date(2025, 1, 1), "alice@acme.test", {"product": "Team plan", "amount": 2}),
    ("90003", date(2025, 3, 31), "bob@acme.test", {"product": "Team plan", "amount": 3}),
    ("90004", date(2025, 4, 1), "bob@acme.test", {"product": "Team plan", "amount": 4}),
]
Q1 = Period(date(2025, 1, 1), date(2025, 3, 31))
H1 = Period(date(2025, 1, 1), date(2025, 6, 30))


class Original:
    """An original database with a sales table (the demo's columns) that tests can change."""

    def __init__(self, url, table):
        self.url, self.table = url, table

    def run(self, sql, params=None):
        """Run SQL on the original database directly, as someone changing the source would."""
        engine = sa.create_engine(self.url)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(sql.format(table=self.table)), params or {})
        finally:
            engine.dispose()


@pytest.fixture
def sqlite_original(tmp_path):
    """The rows in table `sales` of a SQLite file, written as the demo writes its source."""
    url = f"sqlite:///{tmp_path / 'original.sqlite3'}"
    write_source_database(url, ROWS)
    return Original(url, "sales")


@pytest.fixture
def postgres_original(postgres_url):
    """The rows in a uniquely named table of the PostgreSQL test database, dropped afterwards."""
    table = f"import_source_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text(
            f'CREATE TABLE "{table}" (id INTEGER PRIMARY KEY, sold_at DATE NOT NULL, '
            "employee_email TEXT NOT NULL, amount NUMERIC NOT NULL, product TEXT NOT NULL)"))
        conn.execute(sa.text(f'INSERT INTO "{table}" VALUES (:id, :day, :email, :amount, :product)'),
                     [{"id": int(ext), "day": day, "email": email, **values} for ext, day, email, values in ROWS])
    yield Original(postgres_url, table)
    with engine.begin() as conn:
        conn.execute(sa.text("SET LOCAL lock_timeout = '5s'"))
        conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
    engine.dispose()


@pytest.fixture(params=["sqlite_original", "postgres_original"])
def original(request):
    """The same rows in a SQLite original database, then in a PostgreSQL one."""
    return request.getfixturevalue(request.param)


def add_sql_source(world, original, name="Sales database", **settings):
    """An Acme data source with connector "sql" reading the original's sales table."""
    ds = DataSource(organization_id=world.acme, name=name, connector="sql", source_type="table",
                    settings={**SALES_SETTINGS, "table": original.table, **settings}, secrets={"url": original.url})
    ds.fields = [Field(key="product", label="Product", type="text", position=0),
                 Field(key="amount", label="Amount", type="number", position=1)]
    db.session.add(ds)
    db.session.commit()
    return ds.id


def run_import(data_source_id, period, reader=None):
    return import_period(data_source_id, period, reader=reader or SqlReader(), progress=NO_PROGRESS)


def expected_in(period, rows=ROWS):
    """external id -> (day, employee email, values) of the source rows in the period."""
    return {ext: (day, email, values) for ext, day, email, values in rows if period.start <= day <= period.end}


def imported(data_source_id):
    """external id -> (day, employee email, values) of the data source's registrations."""
    rows = db.session.execute(
        sa.select(Registration.external_id, Registration.occurred_on, Employee.email, Registration.values)
        .outerjoin(Employee, Employee.id == Registration.employee_id)
        .where(Registration.data_source_id == data_source_id))
    return {ext: (day, email, values) for ext, day, email, values in rows}


def snapshot(data_source_id, where=None):
    """Every column of the data source's registrations, ids and update times included."""
    return [tuple(row) for row in db.session.execute(
        sa.select(Registration.id, Registration.external_id, Registration.occurred_on, Registration.employee_id,
                  Registration.values, Registration.updated_at)
        .where(Registration.data_source_id == data_source_id, where if where is not None else sa.true())
        .order_by(Registration.id))]


def live(data_source_id):
    return db.session.scalar(sa.select(sa.func.count()).where(Registration.data_source_id == data_source_id))


def counter(data_source_id):
    db.session.expire_all()
    return db.session.get(DataSource, data_source_id).registration_count


def employees(organization_id):
    return sorted(db.session.scalars(sa.select(Employee.email).where(Employee.organization_id == organization_id)))


REPORTED = ("new", "updated", "unchanged", "skipped_suppressed", "failed", "employees_created", "failures",
            "unknown_employees")


def report_counts(report):
    return {key: getattr(report, key) for key in ("new", "updated", "unchanged", "skipped_suppressed", "failed")}


@both_databases
def test_a_period_brings_exactly_its_rows_and_nothing_outside_it_is_touched(app, world, original):
    ds = add_sql_source(world, original)
    first = run_import(ds, H1)
    assert imported(ds) == expected_in(H1)
    assert report_counts(first) == {"new": len(expected_in(H1)), "updated": 0, "unchanged": 0,
                                    "skipped_suppressed": 0, "failed": 0}
    assert counter(ds) == live(ds) == len(expected_in(H1))
    outside_q1 = sa.not_(Registration.occurred_on.between(Q1.start, Q1.end))
    before_outside, calls = snapshot(ds, outside_q1), snapshot(world.calls)
    assert len(before_outside) > 50

    # The source changes inside and outside the first quarter; only Q1 is imported again.
    in_q1 = sorted((ext for ext, (day, _, _) in expected_in(Q1).items() if not ext.startswith("900")), key=int)
    in_q2 = sorted((ext for ext, (day, _, _) in expected_in(H1).items() if day > Q1.end), key=int)
    original.run("UPDATE {table} SET amount = amount + 1 WHERE id IN (:a, :b)", {"a": int(in_q1[0]), "b": int(in_q2[0])})
    original.run("INSERT INTO {table} VALUES (95001, :day, 'carla@acme.test', 77, 'Onboarding')", {"day": date(2025, 2, 14)})
    original.run("INSERT INTO {table} VALUES (95002, :day, 'carla@acme.test', 78, 'Onboarding')", {"day": date(2025, 5, 14)})
    original.run("UPDATE {table} SET sold_at = :day WHERE id = 90004", {"day": date(2025, 3, 30)})  # moved into Q1

    second = run_import(ds, Q1)
    q1_now = len(expected_in(Q1)) + 2  # 95001 and 90004 are in Q1 now
    assert report_counts(second) == {"new": 1, "updated": 2, "unchanged": q1_now - 3,
                                     "skipped_suppressed": 0, "failed": 0}
    got = imported(ds)
    assert got[in_q1[0]][2]["amount"] == expected_in(Q1)[in_q1[0]][2]["amount"] + 1
    assert got["95001"] == (date(2025, 2, 14), "carla@acme.test", {"product": "Onboarding", "amount": 77})
    assert got["90004"][0] == date(2025, 3, 30)
    assert "95002" not in got and "90001" not in got
    # Outside Q1 every registration is exactly as it was, though the source changed one of them.
    assert snapshot(ds, outside_q1) == [row for row in before_outside if row[1] != "90004"]
    assert got[in_q2[0]] == expected_in(H1)[in_q2[0]]
    assert counter(ds) == live(ds) == len(expected_in(H1)) + 1
    assert snapshot(world.calls) == calls


@both_databases
def test_importing_the_same_period_twice_changes_nothing_and_changed_rows_count_as_updated(app, world,
                                                                                        sqlite_original):
    ds = add_sql_source(world, sqlite_original)
    first = run_import(ds, Q1)
    before, staff = snapshot(ds), employees(world.acme)
    second = run_import(ds, Q1)
    assert first.new == len(before) == len(expected_in(Q1)) > 50
    assert report_counts(second) == {"new": 0, "updated": 0, "unchanged": len(before),
                                     "skipped_suppressed": 0, "failed": 0}
    assert second.employees_created == 0
    assert snapshot(ds) == before  # not even rewritten: same ids, same update times
    assert employees(world.acme) == staff
    assert counter(ds) == len(before)

    ids = sorted((ext for ext in expected_in(Q1) if not ext.startswith("900")), key=int)[:3]
    sqlite_original.run("UPDATE {table} SET amount = 5 WHERE id = :id", {"id": int(ids[0])})
    sqlite_original.run("UPDATE {table} SET sold_at = '2025-03-15' WHERE id = :id", {"id": int(ids[1])})
    sqlite_original.run("UPDATE {table} SET employee_email = 'GRETA@acme.test' WHERE id = :id", {"id": int(ids[2])})
    third = run_import(ds, Q1)
    assert (third.new, third.updated, third.unchanged) == (0, 3, len(before) - 3)
    got = imported(ds)
    assert got[ids[0]][2]["amount"] == 5
    assert got[ids[1]][0] == date(2025, 3, 15)
    assert got[ids[2]][1] == "greta@acme.test"  # matched without regard to case
    untouched = [row for row in snapshot(ds) if row[1] not in ids]
    assert untouched == [row for row in before if row[1] not in ids]
    assert counter(ds) == len(before)


@both_databases
def test_suppressed_external_ids_are_skipped_and_counted(app, world, sqlite_original):
    ds = add_sql_source(world, sqlite_original)
    db.session.add_all([Suppression(data_source_id=ds, external_id="90002"),
                        Suppression(data_source_id=ds, external_id="90003"),
                        Suppression(data_source_id=ds, external_id="90004")])  # outside Q1: not counted
    db.session.commit()
    report = run_import(ds, Q1)
    assert report.skipped_suppressed == 2 and report.new == len(expected_in(Q1)) - 2
    assert set(imported(ds)) == set(expected_in(Q1)) - {"90002", "90003"}
    assert counter(ds) == live(ds) == len(expected_in(Q1)) - 2
    again = run_import(ds, Q1)
    assert (again.new, again.skipped_suppressed) == (0, 2)


@both_databases
def test_unknown_employees_are_reported_when_the_settings_say_so_else_created_once(app, world, sqlite_original):
    reporting = add_sql_source(world, sqlite_original, name="Reporting", unknown_employees="report")
    staff = employees(world.acme)
    report = run_import(reporting, Q1)
    assert report.new == len(expected_in(Q1)) and report.employees_created == 0
    assert sorted(report.unknown_employees) == sorted({email for _, email, _ in expected_in(Q1).values()})
    assert employees(world.acme) == staff
    assert {email for _, email, _ in imported(reporting).values()} == {None}

    db.session.add_all([Employee(organization_id=world.acme, name="Alice Andersen", email="Alice@Acme.test"),
                        Employee(organization_id=world.globex, name="Bob at Globex", email="bob@acme.test")])
    db.session.commit()
    alice = db.session.scalar(sa.select(Employee.id).where(Employee.email == "Alice@Acme.test"))
    creating = add_sql_source(world, sqlite_original, name="Creating")  # creates unknown employees by default
    report = run_import(creating, H1)
    emails = {email for _, email, _ in expected_in(H1).values()}
    assert report.employees_created == len(emails) - 1 and report.unknown_employees == []
    assert employees(world.acme) == sorted({"Alice@Acme.test", "ann@acme.test", "ben@acme.test"} | (emails - {"alice@acme.test"}))
    assert employees(world.globex) == ["bob@acme.test", "gus@globex.test"]  # another organization's employee is not used
    assert set(db.session.scalars(sa.select(Registration.employee_id).where(
        Registration.data_source_id == creating, Registration.external_id == "90002"))) == {alice}
    assert imported(creating) == {ext: (day, "Alice@Acme.test" if email == "alice@acme.test" else email, values)
                                  for ext, (day, email, values) in expected_in(H1).items()}
    assert run_import(creating, Q1).employees_created == 0
    assert run_import(reporting, Q1).unknown_employees == []  # they are known now


def test_records_without_an_id_or_outside_the_period_fail_with_reasons_and_the_rest_import(app, world):
    class Reader:
        def read(self, config, period):
            yield [SourceRecord("ok-1", date(2025, 1, 5), {"amount": 1}, "ann@acme.test"),
                   SourceRecord("", date(2025, 1, 6), {"amount": 2}, "ann@acme.test"),
                   SourceRecord("late", date(2025, 4, 6), {"amount": 3}, "ann@acme.test")]
            yield [SourceRecord("ok-2", date(2025, 1, 7), {"amount": 4}, None),
                   SourceRecord("ok-2", date(2025, 1, 8), {"amount": 5}, None)]  # the last word wins

        def deleted_ids(self, config, period):
            yield from ()

    ds = db.session.get(DataSource, world.deals)
    report = run_import(ds.id, Q1, reader=Reader())
    assert report_counts(report) == {"new": 2, "updated": 0, "unchanged": 0, "skipped_suppressed": 0, "failed": 2}
    assert report.failures == [{"external_id": "", "reason": "The record has no id."},
                               {"external_id": "late", "reason": "Its date 2025-04-06 is outside the period."}]
    got = imported(ds.id)
    assert got["ok-1"] == (date(2025, 1, 5), "ann@acme.test", {"amount": 1})
    assert got["ok-2"] == (date(2025, 1, 8), None, {"amount": 5})
    assert counter(ds.id) == live(ds.id) == 32


@both_databases
def test_a_source_failing_mid_import_raises_its_error_and_leaves_the_data_source_consistent(app, world):
    closed = []

    class Reader:
        def read(self, config, period):
            try:
                for page in range(12):
                    yield [SourceRecord(f"r-{page}-{n}", date(2025, 1, 5), {"amount": n}, "ann@acme.test")
                           for n in range(1000)]
                raise ConnectorError("The source went away.")
            finally:
                closed.append(True)

    with pytest.raises(ConnectorError, match="The source went away."):
        run_import(world.deals, Q1, reader=Reader())
    db.session.rollback()  # as the job does
    assert closed == [True]
    assert counter(world.deals) == live(world.deals)
    assert (live(world.deals) - 30) % 1000 == 0 and live(world.deals) > 30  # whole committed batches only


def test_an_import_stopped_by_an_error_here_closes_the_reader(app, world, monkeypatch):
    from portal.operations import importing

    closed, calls = [], []

    class EndlessReader:
        def read(self, config, period):
            try:
                while True:
                    yield [SourceRecord(f"e-{len(calls)}-{n}", date(2025, 1, 5), {}, None) for n in range(1000)]
            finally:
                closed.append(True)

    def failing_upsert(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("the portal's database went away")

    monkeypatch.setattr(importing, "upsert_batch", failing_upsert)
    with pytest.raises(RuntimeError, match="went away"):
        run_import(world.deals, Q1, reader=EndlessReader())
    assert calls == [1] and closed == [True]


def test_a_sqlite_original_in_rollback_journal_mode_is_read_and_left_as_it_was(app, world, tmp_path):
    """Read-only means read-only: the portal's own SQLite pragmas (WAL) are not applied to an original."""
    path = tmp_path / "journal.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE sales (id INTEGER PRIMARY KEY, sold_at DATE, employee_email TEXT, amount NUMERIC, "
                     "product TEXT)")
        conn.execute("INSERT INTO sales VALUES (1, '2025-01-02', 'ann@acme.test', 10, 'Team plan')")
    conn.close()
    ds = add_sql_source(world, Original(f"sqlite:///{path}", "sales"))
    assert run_import(ds, Q1).new == 1
    assert imported(ds) == {"1": (date(2025, 1, 2), "ann@acme.test", {"amount": 10, "product": "Team plan"})}
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    conn.close()
    assert not os.path.exists(f"{path}-wal")


TODAY = date(2026, 12, 31)


@pytest.fixture
def sandbox():
    """The Pipedrive sandbox over real HTTP, served from a thread."""
    server = make_server(port=0, today=TODAY)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


@both_databases
def test_a_pipedrive_import_job_brings_the_periods_deals_from_the_sandbox(app, world, sandbox):
    ds = db.session.get(DataSource, world.deals)
    ds.settings, ds.secrets = {"base_url": sandbox.base_url}, {"api_token": "sandbox-token"}
    db.session.commit()
    seeded = snapshot(world.deals)  # D-0 .. D-29, January 2025
    period = Period(date(2025, 2, 1), date(2025, 9, 30))
    expected = expected_in(period, deal_rows("acme", TODAY))
    lead = db.session.get(User, world.lead)
    job = start_import(ds, lead, period)
    run_queued_jobs()
    db.session.expire_all()
    row = db.session.get(Job, job.id)
    assert row.status == JobStatus.FINISHED, row.error
    assert row.counts["new"] == len(expected) > 100 and row.counts["failed"] == 0
    got = imported(world.deals)
    assert {ext: got[ext] for ext in expected} == expected
    assert set(got) == set(expected) | {ext for _, ext, *_ in seeded}
    assert snapshot(world.deals, Registration.external_id.like("D-%")) == seeded
    assert {email for _, email, _ in expected.values()} <= set(employees(world.acme))
    names = {email: name for name, email in ACME_EMPLOYEES}
    assert db.session.scalar(sa.select(Employee.name).where(Employee.email == "carla@acme.test")) == names["carla@acme.test"]
    assert counter(world.deals) == 30 + len(expected)

    again = start_import(db.session.get(DataSource, world.deals), lead, period)
    run_queued_jobs()
    db.session.expire_all()
    counts = db.session.get(Job, again.id).counts
    assert (counts["new"], counts["updated"], counts["unchanged"]) == (0, 0, len(expected))


@both_databases
def test_the_import_report_lands_in_the_jobs_counts_and_the_audit_log(app, world, sqlite_original):
    ds_id = add_sql_source(world, sqlite_original)
    db.session.add(Suppression(data_source_id=ds_id, external_id="90003"))
    db.session.commit()
    job = start_import(db.session.get(DataSource, ds_id), db.session.get(User, world.lead), Q1)
    assert {key: job.params[key] for key in ("start", "end", "connector", "confirm_removals")} == {
        "start": "2025-01-01", "end": "2025-03-31", "connector": "sql", "confirm_removals": False}
    run_queued_jobs()
    db.session.expire_all()
    row = db.session.get(Job, job.id)
    n = len(expected_in(Q1))
    emails = {email for _, email, _ in expected_in(Q1).values()}
    assert row.status == JobStatus.FINISHED and row.lock_key is None and row.error is None
    assert {key: row.counts[key] for key in REPORTED} == {
        "new": n - 1, "updated": 0, "unchanged": 0, "skipped_suppressed": 1, "failed": 0,
        "employees_created": len(emails), "failures": [], "unknown_employees": []}
    assert row.progress_done == n
    event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "import"))
    assert (event.data_source_id, event.actor_id, event.count, event.outcome) == (ds_id, world.lead, n - 1, "ok")
    assert event.details["period"] == ["2025-01-01", "2025-03-31"] and event.details["skipped_suppressed"] == 1


def test_an_import_whose_source_cannot_be_read_fails_with_the_reason_and_frees_the_data_source(app, world, sqlite_original):
    ds_id = add_sql_source(world, sqlite_original, table="no_such_table")
    lead = db.session.get(User, world.lead)
    job = start_import(db.session.get(DataSource, ds_id), lead, Q1)
    run_queued_jobs()
    db.session.expire_all()
    row = db.session.get(Job, job.id)
    assert row.status == JobStatus.FAILED and row.lock_key is None
    assert "ConnectorError" in row.error and "no_such_table" in row.error and "sales" in row.error
    assert live(ds_id) == 0
    event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "import"))
    assert event is not None and event.outcome == "failed" and "no_such_table" in event.reason
    start_import(db.session.get(DataSource, ds_id), lead, Q1)  # the data source is free again


def test_one_import_or_destructive_job_per_data_source(app, world, sqlite_original):
    ds_id = add_sql_source(world, sqlite_original)
    lead = db.session.get(User, world.lead)
    first = start_import(db.session.get(DataSource, ds_id), lead, Q1)
    with pytest.raises(JobAlreadyRunning) as busy:
        start_import(db.session.get(DataSource, ds_id), lead, H1)
    assert busy.value.job.id == first.id and "“Import” is already running" in str(busy.value)
    with pytest.raises(JobAlreadyRunning):
        start_delete_all(db.session.get(DataSource, ds_id), lead)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Job)) == 1
    other = start_import(db.session.get(DataSource, world.deals), lead, Q1)  # another data source is free
    deleting = start_delete_all(db.session.get(DataSource, world.calls), lead)
    with pytest.raises(JobAlreadyRunning):
        start_import(db.session.get(DataSource, world.calls), lead, Q1)
    assert {first.id, other.id, deleting.id} == set(db.session.scalars(sa.select(Job.id)))


# A worker killed mid-import.

LARGE_ROWS = 60_000
LARGE_PERIOD = Period(date(2025, 1, 1), date(2025, 4, 10))  # 100 of the 120 days: 50,000 rows
LARGE_EMAILS = ["ann@acme.test", "ben@acme.test", "new.one@acme.test", "new.two@acme.test", "New.Three@acme.test"]


def large_rows():
    return [(str(n), date(2025, 1, 1) + timedelta(days=n % 120), LARGE_EMAILS[n % 5],
             {"product": f"P{n % 7}", "amount": n * 3 % 1000}) for n in range(1, LARGE_ROWS + 1)]


def write_large_original(path):
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE sales (id INTEGER PRIMARY KEY, sold_at DATE NOT NULL, "
                     "employee_email TEXT NOT NULL, amount NUMERIC NOT NULL, product TEXT NOT NULL)")
        conn.executemany("INSERT INTO sales VALUES (?, ?, ?, ?, ?)",
                         [(int(ext), day.isoformat(), email, v["amount"], v["product"])
                          for ext, day, email, v in large_rows()])
    conn.close()
    return Original(f"sqlite:///{path}", "sales")


@both_databases
def test_a_worker_killed_mid_import_and_the_rerun_end_exactly_as_a_clean_import(app, world, tmp_path, start_worker):
    original = write_large_original(tmp_path / "large.sqlite3")
    ds_id = add_sql_source(world, original, name="Large sales")
    expected = expected_in(LARGE_PERIOD, large_rows())
    assert len(expected) == 50_000
    deals = snapshot(world.deals)
    app.config["JOB_RETRIES"] = 1
    job = start_import(db.session.get(DataSource, ds_id), db.session.get(User, world.lead), LARGE_PERIOD)
    worker = start_worker()
    deadline = time.monotonic() + 60
    while True:
        db.session.expire_all()
        done = db.session.get(Job, job.id).progress_done
        if 0 < done < len(expected):
            break
        assert time.monotonic() < deadline and worker.poll() is None, "the import never got going"
        time.sleep(0.01)
    kill_worker_and_horse(worker)
    db.session.expire_all()
    row = db.session.get(Job, job.id)
    assert row.status == JobStatus.STARTED and row.lock_key is not None
    partial = live(ds_id)
    assert 0 < partial < len(expected) and counter(ds_id) == partial  # whole pages only, counter with them

    assert requeue_abandoned(stale_after_seconds=0) == [job.id]
    rerun = start_worker(burst=True)
    assert rerun.wait(120) == 0
    db.session.expire_all()
    row = db.session.get(Job, job.id)
    assert row.status == JobStatus.FINISHED and row.attempts == 2 and row.lock_key is None
    assert row.counts["new"] + row.counts["unchanged"] == len(expected) and row.counts["updated"] == 0
    assert row.counts["failed"] == 0
    # The same final state as a clean import: every row once, the same values, employees created once.
    assert live(ds_id) == counter(ds_id) == len(expected)
    got = imported(ds_id)
    assert got == {ext: (day, email.lower(), values) for ext, (day, email, values) in expected.items()}
    assert employees(world.acme) == ["ann@acme.test", "ben@acme.test", "new.one@acme.test", "new.three@acme.test",
                                     "new.two@acme.test"]
    assert snapshot(world.deals) == deals
