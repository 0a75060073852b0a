"""Benchmark: deleting registrations through the deletion operation against a raw SQL DELETE.

Run with `.venv/bin/python -m bench.delete_selected` (see bench/README.md).
"""

import argparse
import statistics
import sys
import time
from datetime import date, timedelta

import sqlalchemy as sa

from bench.scratch import load_registrations, maintenance, scratch_database, settle
from portal import create_app
from portal.extensions import db
from portal.models import DataSource, Employee, Organization, Role, User
from portal.operations.deletion import Selection, delete_registrations
from portal.operations.listing import RegistrationFilter

REDIS_URL = "redis://127.0.0.1:6379/15"  # never contacted: deleting inline enqueues no job

TOTAL_ROWS = 1_000_000
EMPLOYEES = 20
FIRST_DAY = date(2023, 1, 1)
ROWS_PER_DAY = 1_250  # exactly, so equal-length date ranges hold exactly equal row counts
DAYS = TOTAL_ROWS // ROWS_PER_DAY  # 800 days, a little over two years
SELECTED_ROWS = 10_000
RANGE_DAYS = 80  # 80 days x 1,250 = 100,000 rows
GOAL_RATIO = 2.0

RAW_BY_IDS = "DELETE FROM registration WHERE data_source_id = :ds AND id = ANY(:ids)"
RAW_BY_RANGE = "DELETE FROM registration WHERE data_source_id = :ds AND occurred_on BETWEEN :low AND :high"


def main(argv=None):
    """Create the scratch database, load it, measure both cases, print the table, drop it."""
    args = parse_args(argv)
    with scratch_database(keep=args.keep) as url:
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": REDIS_URL})
        with app.app_context():
            try:
                results = run(args)
            finally:
                db.session.remove()
                db.engine.dispose()
        report(results, args)
    return 0  # a measurement, not a test: the figures are the result


def parse_args(argv):
    """Repeats, an optional schema experiment, and whether to keep the database."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3, help="measurements per case (median reported)")
    parser.add_argument("--setup-sql", action="append", default=[], metavar="SQL",
                        help="SQL run on the scratch schema before loading (e.g. to try an index change); repeatable")
    parser.add_argument("--keep", action="store_true", help="leave the scratch database for inspection")
    args = parser.parse_args(argv)
    # Every run of both sides needs its own date range, and the days left after them must
    # hold enough rows for every run's id sets.
    most = max(r for r in range(1, DAYS) if (DAYS - 2 * r * RANGE_DAYS) * ROWS_PER_DAY >= 2 * r * SELECTED_ROWS)
    if not 1 <= args.repeats <= most:
        parser.error(f"--repeats must be between 1 and {most}")
    return args


def run(args):
    """Build the schema and data, then time each case; returns the per-run seconds."""
    started = time.perf_counter()
    db.create_all()
    for statement in args.setup_sql:
        db.session.execute(sa.text(statement))
    db.session.commit()
    ds_id, actor_id = load(TOTAL_ROWS)
    maintenance("VACUUM ANALYZE")
    print(f"Loaded {TOTAL_ROWS:,} registrations in {time.perf_counter() - started:.1f} s", file=sys.stderr)

    # The range case takes the first days and the ids case draws from the days after them,
    # so neither case's deletions change the other's row counts.
    range_days = 2 * args.repeats * RANGE_DAYS
    ranges = [(FIRST_DAY + timedelta(days=start), FIRST_DAY + timedelta(days=start + RANGE_DAYS - 1))
              for start in range(0, range_days, RANGE_DAYS)]
    id_sets = random_id_sets(ds_id, 2 * args.repeats, not_before=FIRST_DAY + timedelta(days=range_days))

    results = {"selected": {"raw": [], "operation": []}, "range": {"raw": [], "operation": []}}
    for repeat in range(args.repeats):
        # Alternate which side goes first, so cache warmth and table state favour neither.
        sides = ("raw", "operation") if repeat % 2 == 0 else ("operation", "raw")
        for side in sides:
            ids = id_sets.pop()
            if side == "raw":
                seconds = timed_raw(RAW_BY_IDS, {"ds": ds_id, "ids": ids}, len(ids))
            else:
                seconds = timed_operation(Selection(RegistrationFilter(ds_id), ids=frozenset(ids)),
                                          actor_id, len(ids))
            results["selected"][side].append((len(ids), seconds))
        for side in sides:
            low, high = ranges.pop()
            count = count_range(ds_id, low, high)
            if side == "raw":
                seconds = timed_raw(RAW_BY_RANGE, {"ds": ds_id, "low": low, "high": high}, count)
            else:
                seconds = timed_operation(Selection(RegistrationFilter(ds_id, date_from=low, date_to=high)),
                                          actor_id, count)
            results["range"][side].append((count, seconds))
        print(f"Run {repeat + 1}/{args.repeats} done", file=sys.stderr)
    print(f"Total {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return results


def load(total):
    """One organization, a lead, 20 employees and one data source of `total` registrations."""
    org = Organization(name="Bench")
    lead = User(email="lead@bench.test", name="Bench Lead", role=Role.LEAD, organization=org)
    lead.set_password("bench")
    employees = [Employee(organization=org, name=f"Employee {n}", email=f"e{n}@bench.test")
                 for n in range(EMPLOYEES)]
    ds = DataSource(organization=org, name="Bench", connector="manual", source_type="manual",
                    settings={}, secrets={}, registration_count=total)
    db.session.add_all([org, lead, ds, *employees])
    db.session.flush()
    load_registrations(ds.id, org.id, total, first_day=FIRST_DAY, per_day=ROWS_PER_DAY, employees=EMPLOYEES)
    return ds.id, lead.id


def random_id_sets(ds_id, how_many, not_before):
    """Disjoint sets of random registration ids, SELECTED_ROWS each, seeded for repeatability."""
    db.session.execute(sa.text("SELECT setseed(0.42)"))
    ids = db.session.scalars(sa.text(
        "SELECT id FROM registration WHERE data_source_id = :ds AND occurred_on >= :day "
        "ORDER BY random() LIMIT :n"), {"ds": ds_id, "day": not_before, "n": how_many * SELECTED_ROWS}).all()
    db.session.commit()
    return [sorted(ids[i:i + SELECTED_ROWS]) for i in range(0, len(ids), SELECTED_ROWS)]


def count_range(ds_id, low, high):
    """How many registrations the date range holds (outside the timing)."""
    count = db.session.scalar(sa.text(
        "SELECT count(*) FROM registration WHERE data_source_id = :ds AND occurred_on BETWEEN :low AND :high"),
        {"ds": ds_id, "low": low, "high": high})
    db.session.commit()
    return count


def timed_raw(sql, params, expected):
    """Run one raw DELETE in its own transaction and check it deleted what was expected."""
    settle()
    started = time.perf_counter()
    deleted = db.session.execute(sa.text(sql), params).rowcount
    db.session.commit()
    seconds = time.perf_counter() - started
    if deleted != expected:
        raise RuntimeError(f"raw DELETE removed {deleted:,} rows, expected {expected:,}")
    return seconds


def timed_operation(selection, actor_id, expected):
    """Seconds for delete_registrations on the selection (it commits itself)."""
    settle()
    started = time.perf_counter()
    batch = delete_registrations(selection, actor_id=actor_id, expected_count=expected)
    seconds = time.perf_counter() - started
    if batch.count != expected:
        raise RuntimeError(f"the operation moved {batch.count:,} rows, expected {expected:,}")
    return seconds


def report(results, args):
    """Print the medians as a table, one line per case, with each run's figures below."""
    cases = [("selected", "10k selected by id"), ("range", "100k all matching (dates)")]
    print()
    print("Deleting registrations from one data source of "
          f"{TOTAL_ROWS:,} rows (PostgreSQL, median of {args.repeats})")
    if args.setup_sql:
        print("Schema changed before loading by: " + "; ".join(args.setup_sql))
    header = f"{'case':<27} {'rows':>8} {'raw s':>8} {'operation s':>12} {'ratio':>7} {'goal':>7}  result"
    print(header)
    print("-" * len(header))
    for key, label in cases:
        raw, operation = results[key]["raw"], results[key]["operation"]
        if len({rows for rows, _ in raw + operation}) != 1:
            raise RuntimeError(f"{label}: the runs deleted different numbers of rows")
        raw_s = statistics.median(s for _, s in raw)
        op_s = statistics.median(s for _, s in operation)
        ratio = op_s / raw_s
        verdict = "PASS" if ratio <= GOAL_RATIO else "OVER"
        goal = f"<={GOAL_RATIO}x"
        print(f"{label:<27} {raw[0][0]:>8,} {raw_s:>8.3f} {op_s:>12.3f} {ratio:>6.2f}x {goal:>7}  {verdict}")
    print()
    for key, label in cases:
        raw, operation = results[key]["raw"], results[key]["operation"]
        print(f"{label}: raw runs " + ", ".join(f"{s:.3f}" for _, s in raw)
              + " s; operation runs " + ", ".join(f"{s:.3f}" for _, s in operation) + " s")
    print("\nMethod: both sides delete real, different rows of the same kind in the same process: "
          "disjoint random id sets (drawn from the same days) and disjoint 80-day ranges of exactly "
          "equal row count; the side that runs first alternates per run; each measurement follows "
          "VACUUM and CHECKPOINT and includes its commit. The operation also hides the rows in "
          "hidden_registration (restorable) and writes its batch, counter and audit event; the raw "
          "DELETE does not.")


if __name__ == "__main__":
    sys.exit(main())
