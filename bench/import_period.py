"""Benchmark: importing a period through the import operation against loading the same rows with COPY.

Run with `.venv/bin/python -m bench.import_period` (see bench/README.md).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import date, datetime

import sqlalchemy as sa

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/15"  # never contacted: the import runs inline, no job is queued

TOTAL_ROWS = 1_000_000
SMALL_ROWS = 100_000
EMPLOYEES = 20
FIRST_DAY = date(2023, 1, 1)
ROWS_PER_DAY = 1_250  # exactly, so the first 80 days hold exactly 100,000 rows
GOAL_RATIO = 2.0
SETTINGS = {"table": "sales", "id_column": "id", "date_column": "sold_at", "employee_column": "employee_email"}

SOURCE_TABLE = """
CREATE TABLE sales (id BIGINT PRIMARY KEY, sold_at DATE NOT NULL, employee_email TEXT NOT NULL,
                    amount NUMERIC(12, 2) NOT NULL, product TEXT NOT NULL)
"""
SOURCE_ROWS = """
INSERT INTO sales
SELECT n, DATE '2023-01-01' + ((n - 1) / :per_day)::int, 'employee' || (n % :employees) || '@bench.test',
       ((n::bigint * 7919) % 100000) / 100.0, 'Product ' || (n % 13)
FROM generate_series(1, :total) AS n
"""


def main(argv=None):
    """Create the scratch databases, load the source, measure COPY and the import, print the table, drop them."""
    args = parse_args(argv)
    if args.child:
        return child(args)
    base_url = sa.make_url(os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    names = {"source": f"portal_bench_source_{os.getpid()}", "portal": f"portal_bench_portal_{os.getpid()}"}
    admin = sa.create_engine(base_url, isolation_level="AUTOCOMMIT")
    urls = {key: base_url.set(database=name).render_as_string(hide_password=False) for key, name in names.items()}
    try:
        with admin.connect() as conn:
            for name in names.values():
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        results = run(args, urls)
        report(results, args)
    finally:
        if args.keep:
            print("\nKept the scratch databases: " + ", ".join(names.values()))
        else:
            with admin.connect() as conn:
                for name in names.values():
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return 0  # a measurement, not a test: the figures are the result


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=TOTAL_ROWS, help="rows in the source (default 1,000,000)")
    parser.add_argument("--page-size", type=int, default=None,
                        help="the SQL connector's page_size setting (default: the connector's default)")
    parser.add_argument("--removals", choices=["run", "skip"], default="run",
                        help="whether import_period's last step (deleting what the source no longer has) runs")
    parser.add_argument("--removals-timeout", type=int, default=300, metavar="SECONDS",
                        help="statement timeout for that step (default 300; 0: none)")
    parser.add_argument("--keep", action="store_true", help="leave the scratch databases for inspection")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--portal-url", help=argparse.SUPPRESS)
    parser.add_argument("--data-source", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--start", help=argparse.SUPPRESS)
    parser.add_argument("--end", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rows < SMALL_ROWS or args.rows % ROWS_PER_DAY:
        parser.error(f"--rows must be at least {SMALL_ROWS:,} and a multiple of {ROWS_PER_DAY:,}")
    return args


def run(args, urls):
    """Load the source, prepare the portal, then measure: COPY, the import of 100k rows, of all rows."""
    source = sa.create_engine(urls["source"])
    with source.begin() as conn:
        conn.execute(sa.text(SOURCE_TABLE))
        conn.execute(sa.text(SOURCE_ROWS), {"per_day": ROWS_PER_DAY, "employees": EMPLOYEES, "total": args.rows})
    vacuum(source, "sales")
    source.dispose()

    ids = prepare_portal(urls, args)
    portal = sa.create_engine(urls["portal"])
    vacuum(portal, "registration")
    copy_seconds, copy_rss = copy_load(urls, ids["copy"], ids["employees"], args.rows)
    vacuum(portal, "registration_copy")

    last_day = FIRST_DAY.toordinal() + args.rows // ROWS_PER_DAY - 1
    small_end = date.fromordinal(FIRST_DAY.toordinal() + SMALL_ROWS // ROWS_PER_DAY - 1)
    small = import_in_child(args, urls["portal"], ids["small"], FIRST_DAY, small_end)
    vacuum(portal, "registration")
    full = import_in_child(args, urls["portal"], ids["full"], FIRST_DAY, date.fromordinal(last_day))
    same = same_rows(portal, ids["full"], ids["copy"], args.rows)
    vacuum(portal, "registration")
    again = import_in_child(args, urls["portal"], ids["full"], FIRST_DAY, date.fromordinal(last_day))
    portal.dispose()
    return {"rows": args.rows, "copy_seconds": copy_seconds, "copy_rss": copy_rss, "small": small, "full": full,
            "again": again, "same": same}


def prepare_portal(urls, args):
    """The portal's schema, an organization with its employees, and one data source per measurement."""
    from portal import create_app
    from portal.extensions import db
    from portal.models import DataSource, Employee, Organization

    app = create_app({"SQLALCHEMY_DATABASE_URI": urls["portal"], "REDIS_URL": REDIS_URL})
    with app.app_context():
        db.create_all()
        org = Organization(name="Bench")
        db.session.add(org)
        db.session.flush()
        staff = [Employee(organization_id=org.id, name=f"Employee {n}", email=f"employee{n}@bench.test")
                 for n in range(EMPLOYEES)]
        db.session.add_all(staff)
        settings = dict(SETTINGS, **({"page_size": args.page_size} if args.page_size else {}))
        sources = {key: DataSource(organization_id=org.id, name=name, connector="sql", source_type="table",
                                   settings=settings, secrets={"url": urls["source"]})
                   for key, name in [("copy", "COPY baseline"), ("small", "Import 100k"), ("full", "Import all")]}
        db.session.add_all(sources.values())
        db.session.commit()
        ids = {key: ds.id for key, ds in sources.items()}
        ids["employees"] = {e.email: e.id for e in staff}
        # The same columns, defaults, constraints, indexes and foreign keys as registration, no rows.
        db.session.execute(sa.text("CREATE TABLE registration_copy (LIKE registration INCLUDING ALL)"))
        foreign_keys = db.session.execute(sa.text(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'registration'::regclass "
            "AND contype = 'f'")).scalars().all()
        for definition in foreign_keys:
            db.session.execute(sa.text(f"ALTER TABLE registration_copy ADD {definition}"))
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return ids


def vacuum(engine, table):
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f"VACUUM ANALYZE {table}"))
        conn.execute(sa.text("CHECKPOINT"))


def copy_load(urls, data_source_id, employees, rows):
    """The floor: stream the source's rows with psycopg and write them with cursor.copy, in one transaction."""
    import psycopg

    def dsn(url):
        return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)

    now = datetime.now()
    start = time.perf_counter()
    with psycopg.connect(dsn(urls["source"])) as source, psycopg.connect(dsn(urls["portal"])) as portal:
        with source.cursor(name="bench_read") as read, portal.cursor() as write:
            read.itersize = 10_000
            read.execute("SELECT id, sold_at, employee_email, amount, product FROM sales")
            with write.copy('COPY registration_copy (data_source_id, external_id, employee_id, occurred_on, '
                            '"values", updated_at) FROM STDIN') as copy:
                for row_id, day, email, amount, product in read:
                    values = {"amount": int(amount) if amount == amount.to_integral_value() else float(amount),
                              "product": product}
                    copy.write_row((data_source_id, str(row_id), employees.get(email), day, json.dumps(values), now))
        portal.commit()
    elapsed = time.perf_counter() - start
    with psycopg.connect(dsn(urls["portal"])) as portal:
        assert portal.execute("SELECT count(*) FROM registration_copy").fetchone()[0] == rows
    return elapsed, peak_rss_mb()


def import_in_child(args, portal_url, data_source_id, start, end):
    """Run import_period in a fresh process, so that its peak memory is its own."""
    command = [sys.executable, "-m", "bench.import_period", "--child", "--portal-url", portal_url,
               "--data-source", str(data_source_id), "--start", start.isoformat(), "--end", end.isoformat(),
               "--removals", args.removals, "--removals-timeout", str(args.removals_timeout)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        sys.exit(f"The import failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def child(args):
    """Import the period into the data source and print elapsed time, memory and the report as JSON."""
    from portal import create_app
    from portal.connectors.base import Period
    from portal.connectors.sql import SqlReader
    from portal.extensions import db
    from portal.operations import importing
    from portal.operations.progress import NO_PROGRESS

    phases = {"removals": 0.0, "removals_error": None}
    removals = getattr(importing, "apply_source_deletions", None)
    if removals is not None:  # the step after the upserts: deleting here what the source no longer has

        def timed_removals(*a, **kw):
            begin = time.perf_counter()
            if args.removals_timeout:
                db.session.execute(sa.text(f"SET LOCAL statement_timeout = '{args.removals_timeout}s'"))
            try:
                return removals(*a, **kw)
            except sa.exc.OperationalError as error:  # the statement timeout: report it, finish the import
                db.session.rollback()
                phases["removals_error"] = str(error.orig).splitlines()[0]
            finally:
                phases["removals"] += time.perf_counter() - begin

        importing.apply_source_deletions = timed_removals if args.removals == "run" else (lambda *a, **kw: None)

    app = create_app({"SQLALCHEMY_DATABASE_URI": args.portal_url, "REDIS_URL": REDIS_URL})
    with app.app_context():
        before = current_rss_mb()
        period = Period(date.fromisoformat(args.start), date.fromisoformat(args.end))
        start = time.perf_counter()
        report = importing.import_period(args.data_source, period, reader=SqlReader(), progress=NO_PROGRESS)
        elapsed = time.perf_counter() - start
        db.session.remove()
        db.engine.dispose()
    print(json.dumps({"seconds": elapsed, "removals_seconds": phases["removals"],
                      "removals_error": phases["removals_error"], "rss_before": before, "rss_peak": peak_rss_mb(),
                      "report": {key: value for key, value in report.as_dict().items() if isinstance(value, int)}}))
    return 0


def same_rows(engine, imported_id, copied_id, rows):
    """Whether the import wrote exactly the rows COPY wrote (ids and update times aside)."""
    digest = """
        SELECT count(*), md5(string_agg(external_id || '|' || occurred_on || '|' || coalesce(employee_id, 0) || '|'
                                        || "values"::jsonb::text, ',' ORDER BY external_id))
        FROM {table} WHERE data_source_id = :ds
    """
    with engine.connect() as conn:
        imported = conn.execute(sa.text(digest.format(table="registration")), {"ds": imported_id}).one()
        copied = conn.execute(sa.text(digest.format(table="registration_copy")), {"ds": copied_id}).one()
    return imported[0] == rows and tuple(imported) == tuple(copied)


def current_rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def report(results, args):
    rows, copy_seconds = results["rows"], results["copy_seconds"]
    small, full, again = results["small"], results["full"], results["again"]
    print(f"\nImporting {rows:,} rows from a PostgreSQL original database into the portal's PostgreSQL")
    print(f"(SQL connector page size: {args.page_size or 'default'}; every figure includes its commits)\n")
    header = (f"{'what':<46} {'rows':>10} {'seconds':>8} {'rows/s':>8} {'x COPY':>7} "
              f"{'peak RSS MB':>12} {'RSS growth MB':>14}")
    print(header)
    print("-" * len(header))
    print(f"{'COPY (psycopg read + cursor.copy)':<46} {rows:>10,} {copy_seconds:>8.2f} {rows / copy_seconds:>8,.0f} "
          f"{1:>7.2f} {results['copy_rss']:>12.0f} {'':>14}")
    for label, run_, n in [("import_period, first 80 days", small, SMALL_ROWS), ("import_period, all", full, rows),
                           ("import_period, all again (nothing changed)", again, rows)]:
        scale = n / rows  # the ratio against COPY of the same number of rows
        upserts = run_["seconds"] - run_["removals_seconds"]
        print(f"{label:<46} {n:>10,} {run_['seconds']:>8.2f} {n / run_['seconds']:>8,.0f} "
              f"{run_['seconds'] / (copy_seconds * scale):>7.2f} {run_['rss_peak']:>12.0f} "
              f"{run_['rss_peak'] - run_['rss_before']:>14.0f}")
        print(f"{'  of which: read + upsert':<46} {'':>10} {upserts:>8.2f} {n / upserts:>8,.0f} "
              f"{upserts / (copy_seconds * scale):>7.2f}")
        if args.removals == "skip":
            print(f"{'  deletions gone from the source: skipped':<46}")
        else:
            print(f"{'  of which: deletions gone from the source':<46} {'':>10} {run_['removals_seconds']:>8.2f} "
                  f"{'':>8} {run_['removals_seconds'] / (copy_seconds * scale):>7.2f}"
                  + (f"  STOPPED: {run_['removals_error']}" if run_["removals_error"] else ""))
    ratio = full["seconds"] / copy_seconds
    upsert_ratio = (full["seconds"] - full["removals_seconds"]) / copy_seconds
    print()
    print(f"read + upsert / COPY: {upsert_ratio:.2f}x (goal: at most {GOAL_RATIO:.0f}x) -> "
          f"{'within' if upsert_ratio <= GOAL_RATIO else 'OVER'}")
    if args.removals == "skip":
        print("import_period's deletions step was skipped (--removals skip)")
    elif full["removals_error"]:
        print(f"import_period / COPY: unknown, its deletions step was stopped after {full['removals_seconds']:.0f} s "
              f"({full['removals_error']})")
    else:
        print(f"import_period / COPY, deletions step included: {ratio:.2f}x -> "
              f"{'within' if ratio <= GOAL_RATIO else 'OVER'}")
    growth_small = small["rss_peak"] - small["rss_before"]
    growth_full = full["rss_peak"] - full["rss_before"]
    print(f"memory during the import: +{growth_small:.0f} MB at {SMALL_ROWS:,} rows, +{growth_full:.0f} MB at "
          f"{rows:,} rows ({'constant' if growth_full <= growth_small * 1.25 + 5 else 'GROWS with the rows'})")
    print(f"report of the full import: {full['report']}")
    print(f"report of the same import again: {again['report']}")
    print(f"same rows as COPY wrote: {'yes' if results['same'] else 'NO'}")


if __name__ == "__main__":
    sys.exit(main())
