"""Benchmark: "delete all registrations" of a big data source against a raw SQL DELETE, and the worker's memory.

Run with `.venv/bin/python -m bench.delete_all` (see bench/README.md).
"""

import argparse
import dataclasses
import inspect
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import sqlalchemy as sa
from redis import Redis
from rq.job import Job as RQJob

from bench.scratch import load_registrations, maintenance, scratch_database, settle
from portal import create_app
from portal.extensions import db
from portal.jobs import put_on_queue
from portal.jobs.delete_all import delete_all, start_delete_all
from portal.models import DataSource, DeletionBatch, Employee, HiddenRegistration, Job, Organization, Registration, Role, User
from portal.operations.delete_all import delete_all_registrations
from portal.operations.deletion import PURGE_CHUNK as DEFAULT_CHUNK
from portal.operations.deletion import purge_batch
from portal.operations.listing import RegistrationFilter
from portal.operations.progress import Progress

REDIS_URL = "redis://127.0.0.1:6379/15"
REPO = Path(__file__).resolve().parent.parent

TARGET_ROWS = 1_000_000
NEIGHBOUR_ROWS = 100_000
MEMORY_SIZES = (100_000, 1_000_000)
EMPLOYEES = 20
FIRST_DAY = date(2023, 1, 1)
ROWS_PER_DAY = 1_250
PAGE_SIZE = 50
GOALS = {"visible": 1.5, "gone": 2.0, "memory": 1.3}
WORKER_DEADLINE_SECONDS = 300
POLL_SECONDS = 0.01
QUEUED_JOBS = []  # RQ job ids this run put in the shared Redis, removed at the end

RAW_DELETE = "DELETE FROM registration WHERE data_source_id = :ds"
FINGERPRINT = """
SELECT count(*), md5(string_agg(concat_ws('|', id, external_id, employee_id, occurred_on, "values"::text, updated_at),
                                 ',' ORDER BY id))
FROM registration WHERE data_source_id = :ds
"""


def main(argv=None):
    """Create the scratch database, measure, print the table, drop the database; always exit 0."""
    args = parse_args(argv)
    queue = f"bench_delete_all_{os.getpid()}"
    with scratch_database(keep=args.keep) as url:
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": REDIS_URL, "RQ_QUEUE": queue})
        with app.app_context():
            try:
                results = run(args, url, queue)
            finally:
                db.session.remove()
                db.engine.dispose()
                forget_queue(queue)
        report(results, args)
    return 0  # a measurement, not a test: the figures are the result


def parse_args(argv):
    """Repeats, chunk size, an optional schema experiment, whether to keep the database."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=2,
                        help="timed runs of each side (median reported); each adds about a minute here")
    parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK,
                        help=f"rows per chunk for purge_batch, and for delete_all_registrations where it "
                             f"works in chunks (default {DEFAULT_CHUNK:,})")
    parser.add_argument("--setup-sql", action="append", default=[], metavar="SQL",
                        help="SQL run on the scratch schema before loading (e.g. to try an index change); repeatable")
    parser.add_argument("--no-worker", action="store_true", help="skip the worker memory runs")
    parser.add_argument("--keep", action="store_true", help="leave the scratch database for inspection")
    args = parser.parse_args(argv)
    if not 1 <= args.repeats <= 5:
        parser.error("--repeats must be between 1 and 5")
    return args


def run(args, url, queue):
    """Build the schema and the neighbour, time both sides, run the worker, check the neighbour."""
    started = time.perf_counter()
    db.create_all()
    for statement in args.setup_sql:
        db.session.execute(sa.text(statement))
    for table in ("registration", "hidden_registration"):
        # The benchmark vacuums before every measurement; autovacuum waking up in the middle of
        # one (after a million inserts or deletes) would make the figures depend on its timing.
        db.session.execute(sa.text(f"ALTER TABLE {table} SET (autovacuum_enabled = false)"))
    db.session.commit()
    org_id, lead_id = organization()
    neighbour = data_source(org_id, "Neighbour", NEIGHBOUR_ROWS)
    before = fingerprint(neighbour)
    results = {"raw": [], "operation": [], "memory": {}, "neighbour": None}
    checker = sa.create_engine(url, isolation_level="AUTOCOMMIT")  # a second connection, like a page view
    try:
        for repeat in range(args.repeats):
            target = data_source(org_id, f"Target {repeat}", TARGET_ROWS)
            reference = data_source(org_id, f"Reference {repeat}", TARGET_ROWS)
            maintenance("VACUUM ANALYZE")
            # Alternate which side goes first, so cache warmth and table state favour neither.
            sides = ("raw", "operation") if repeat % 2 == 0 else ("operation", "raw")
            for side in sides:
                if side == "raw":
                    results["raw"].append(timed_raw(reference, TARGET_ROWS))
                else:
                    results["operation"].append(timed_operation(target, lead_id, TARGET_ROWS, args.chunk_size, checker))
            log(f"Run {repeat + 1}/{args.repeats}: raw {results['raw'][-1]:.3f} s, "
                f"operation {results['operation'][-1]['gone']:.3f} s ({time.perf_counter() - started:.0f} s so far)")
    finally:
        checker.dispose()
    if not args.no_worker:
        for size in MEMORY_SIZES:
            ds_id = data_source(org_id, f"Worker {size}", size)
            maintenance("VACUUM ANALYZE")
            results["memory"][size] = worker_run(ds_id, lead_id, size, url, queue)
            log(f"Worker at {size:,}: peak RSS {results['memory'][size]['horse_peak_kb'] / 1024:.1f} MB "
                f"({time.perf_counter() - started:.0f} s so far)")
    results["neighbour"] = neighbour_check(neighbour, before)
    log(f"Total {time.perf_counter() - started:.1f} s")
    return results


def log(message):
    print(message, file=sys.stderr, flush=True)


def organization():
    """One organization with a lead (the actor) and 20 employees."""
    org = Organization(name="Bench")
    lead = User(email="lead@bench.test", name="Bench Lead", role=Role.LEAD, organization=org)
    lead.set_password("bench")
    employees = [Employee(organization=org, name=f"Employee {n}", email=f"e{n}@bench.test") for n in range(EMPLOYEES)]
    db.session.add_all([org, lead, *employees])
    db.session.commit()
    return org.id, lead.id


def data_source(org_id, name, total):
    """A data source of `total` registrations (ids contiguous, dates ascending, 1,250 a day)."""
    ds = DataSource(organization_id=org_id, name=name, connector="manual", source_type="manual",
                    settings={}, secrets={}, registration_count=total)
    db.session.add(ds)
    db.session.flush()
    load_registrations(ds.id, org_id, total, first_day=FIRST_DAY, per_day=ROWS_PER_DAY, employees=EMPLOYEES)
    return ds.id


def fingerprint(ds_id):
    """(row count, md5 over every column of every row) of a data source's registrations."""
    row = tuple(db.session.execute(sa.text(FINGERPRINT), {"ds": ds_id}).one())
    db.session.commit()
    return row


def timed_raw(ds_id, expected):
    """Seconds for one raw DELETE of the data source's rows, in its own transaction, with its commit."""
    settle(fresh_connection=True)
    started = time.perf_counter()
    deleted = db.session.execute(sa.text(RAW_DELETE), {"ds": ds_id}).rowcount
    db.session.commit()
    seconds = time.perf_counter() - started
    if deleted != expected:
        raise RuntimeError(f"raw DELETE removed {deleted:,} rows, expected {expected:,}")
    return seconds


class WatermarkClock(Progress):
    """Notes the moment the operation has committed what hides the rows from every page.

    delete_all_registrations reports its first progress in the transaction that hides the
    rows and commits right after it: in the chunked version, update(0, total, cursor) in
    _begin, with DataSource.hidden_through_id set before the chunks; in the one-transaction
    version (a batch that hides by id), its only update. So the first commit after the first
    update is the moment the data source shows nothing. At that moment a second connection
    checks it as a page view would, and times the check so that it can be left out of the
    operation's figures.
    """

    def __init__(self, ds_id, checker):
        self.ds_id, self.checker = ds_id, checker
        self.armed = False
        self.visible_at = None
        self.check = None
        self.session = db.session()  # the scoped session's current Session: the one the operation commits
        sa.event.listen(self.session, "after_commit", self._after_commit)

    def update(self, done, total=None, cursor=None):
        if self.visible_at is None:
            self.armed = True

    def _after_commit(self, session):
        if not self.armed or self.visible_at is not None:
            return
        self.visible_at = time.perf_counter()
        with self.checker.connect() as conn:
            counter = conn.scalar(sa.select(DataSource.registration_count).where(DataSource.id == self.ds_id))
            page_started = time.perf_counter()
            page = conn.execute(sa.select(Registration.id).where(*page_filter(conn, self.ds_id).clauses())
                                .order_by(Registration.occurred_on.desc(), Registration.id.desc()).limit(PAGE_SIZE + 1)).all()
            page_seconds = time.perf_counter() - page_started
        self.check = {"counter": counter, "page_rows": len(page),
                      "page_seconds": page_seconds, "seconds": time.perf_counter() - self.visible_at}

    def close(self):
        sa.event.remove(self.session, "after_commit", self._after_commit)


def page_filter(conn, ds_id):
    """The filter the data source page lists with (it honours the watermark where there is one)."""
    if hasattr(DataSource, "hidden_through_id") and "above_id" in {f.name for f in dataclasses.fields(RegistrationFilter)}:
        above = conn.scalar(sa.select(DataSource.hidden_through_id).where(DataSource.id == ds_id))
        return RegistrationFilter(ds_id, above_id=above)
    return RegistrationFilter(ds_id)


def timed_operation(ds_id, actor_id, expected, chunk_size, checker):
    """Seconds until the data source shows nothing, until delete_all returns, and after the purge."""
    settle(fresh_connection=True)
    clock = WatermarkClock(ds_id, checker)
    # The chunked version takes a chunk size; the one-transaction version has no chunks.
    options = {"chunk_size": chunk_size} if "chunk_size" in inspect.signature(delete_all_registrations).parameters else {}
    try:
        started = time.perf_counter()
        batch = delete_all_registrations(ds_id, actor_id=actor_id, progress=clock, **options)
        moved_at = time.perf_counter()
        batch_id, moved = batch.id, batch.count
        removed = purge_batch(batch_id, chunk_size=chunk_size, actor_id=actor_id)
        gone_at = time.perf_counter()
    finally:
        clock.close()
    check = clock.check
    if check is None:
        raise RuntimeError("the operation never committed its first cursor")
    if check["counter"] != 0 or check["page_rows"] != 0:
        raise RuntimeError(f"the data source still showed registrations once they were hidden: {check}")
    if moved != expected or removed != expected:
        raise RuntimeError(f"the operation hid {moved:,} and purged {removed:,} rows, expected {expected:,}")
    left = db.session.scalar(sa.select(sa.func.count()).select_from(Registration).where(Registration.data_source_id == ds_id))
    hidden_left = db.session.scalar(sa.select(sa.func.count()).select_from(HiddenRegistration)
                                    .where(HiddenRegistration.batch_id == batch_id))
    db.session.commit()
    if left or hidden_left:
        raise RuntimeError(f"after the purge {left:,} registrations and {hidden_left:,} hidden rows remain")
    extra = check["seconds"]  # the check ran inside the operation's time; leave it out
    return {
        "visible": clock.visible_at - started,
        "moved": moved_at - started - extra,
        "purge": gone_at - moved_at,
        "gone": gone_at - started - extra,
        "page_seconds": check["page_seconds"],
    }


def worker_run(ds_id, lead_id, expected, url, queue):
    """Delete all of the data source through a real `flask worker --burst`; the work horse's peak RSS.

    Redis DB 15 on the shared server is also flushed by test runs, which can take the job
    off the queue before the worker gets it; then the worker finds nothing, the Job row is
    still queued, and the job is put on the queue again (at most twice).
    """
    data_source = db.session.get(DataSource, ds_id)
    job_id = start_delete_all(data_source, db.session.get(User, lead_id)).id
    QUEUED_JOBS.append(job_id)
    db.session.remove()
    flask = Path(sys.executable).with_name("flask")
    command = [str(flask)] if flask.exists() else [sys.executable, "-m", "flask"]
    command += ["--app", "app", "worker", "--burst"]
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": REDIS_URL, "RQ_QUEUE": queue}
    for attempt in range(3):
        with tempfile.TemporaryFile("w+") as output:
            proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT)
            memory = watch_worker(proc)
            output.seek(0)
            text = output.read()
        job = db.session.get(Job, job_id)
        status, counts, error = str(job.status), dict(job.counts or {}), job.error
        db.session.commit()
        if memory["horses"] or status != "queued" or attempt == 2:
            break
        log("The job left the queue before the worker took it (Redis DB 15 flushed by someone?); queuing it again")
        put_on_queue(delete_all, job_id)
        db.session.remove()
    memory["requeued"] = attempt
    if memory["exit_code"] != 0 or status != "finished" or counts.get("deleted") != expected:
        raise RuntimeError(f"the worker run failed (exit {memory['exit_code']}, job {status}, counts {counts}, "
                           f"error {error}); its output:\n{text[-3000:]}")
    if memory["horses"] != 1:
        raise RuntimeError(f"expected one work horse, saw {memory['horses']}; output:\n{text[-3000:]}")
    return memory


def watch_worker(proc):
    """Poll the worker's children until it exits; return the work horse's peak RSS and more, in kB.

    RQ's work horse is the child that calls setpgrp() right after fork (its process group is
    its own pid), which tells it apart from a scheduler process. Its VmHWM is the kernel's
    high-water mark of its resident set, so a poll every 10 ms misses at most the last few
    milliseconds of its life. The kernel's other figures would not do: wait4's ru_maxrss of
    the worker counts the resident set of this process, which launched it, across the exec;
    /usr/bin/time -v reports the larger of the worker parent and the horse (the parent here).
    """
    deadline = time.monotonic() + WORKER_DEADLINE_SECONDS
    horses = {}  # pid -> {"peak": kB, "first_seen": t, "last_seen": t}
    others = {}  # other children (a scheduler process, if any): pid -> peak kB
    parent_rss = parent_hwm = None
    while True:
        pid, status = os.waitpid(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            break
        now = time.perf_counter()
        parent_hwm = max(parent_hwm or 0, status_kb(proc.pid, "VmHWM") or 0)
        for child in children(proc.pid):
            hwm = status_kb(child, "VmHWM")
            if hwm is None:
                continue
            if process_group(child) != child:
                others[child] = max(others.get(child, 0), hwm)
                continue
            if child not in horses:
                horses[child] = {"peak": 0, "first_seen": now}
                parent_rss = status_kb(proc.pid, "VmRSS")
                parent_hwm = max(parent_hwm, parent_rss or 0)
            horses[child]["peak"] = max(horses[child]["peak"], hwm)
            horses[child]["last_seen"] = now
        if time.monotonic() > deadline:
            for child in horses:
                with_no_error(os.kill, child, 9)
            proc.kill()
            proc.wait()
            raise RuntimeError(f"the worker did not finish within {WORKER_DEADLINE_SECONDS} s")
        time.sleep(POLL_SECONDS)
    peak = max((h["peak"] for h in horses.values()), default=0)
    seconds = max((h["last_seen"] - h["first_seen"] for h in horses.values()), default=0.0)
    return {"exit_code": proc.returncode, "horses": len(horses), "horse_peak_kb": peak,
            "worker_rss_at_fork_kb": parent_rss or 0, "worker_peak_kb": parent_hwm or 0,
            "other_children_peak_kb": max(others.values(), default=0), "horse_seconds": seconds}


def children(pid):
    """Direct children of a process, from /proc/<pid>/task/*/children."""
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(p) for p in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except OSError:
            pass
    return found


def process_group(pid):
    """The process group id of a process, or None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[2])  # after "pid (comm)": state ppid pgrp


def status_kb(pid, field):
    """A kB field of /proc/<pid>/status (VmHWM, VmRSS), or None once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def with_no_error(func, *args):
    try:
        func(*args)
    except OSError:
        pass


def forget_queue(queue):
    """Remove this run's RQ jobs and queue keys from the shared Redis database (only ours)."""
    try:
        redis = Redis.from_url(REDIS_URL)
        for job_id in QUEUED_JOBS:
            if redis.exists(f"rq:job:{job_id}"):
                RQJob.fetch(job_id, connection=redis).delete()
        for key in redis.scan_iter(match=f"*{queue}*"):
            redis.delete(key)
    except Exception as exc:  # cleaning up must not hide the figures
        log(f"Could not clean up Redis: {exc}")


def neighbour_check(ds_id, before):
    """Whether the other data source is exactly as it was: every row and column, live, shown, counted."""
    after = fingerprint(ds_id)
    data_source = db.session.get(DataSource, ds_id)
    live = db.session.scalar(sa.select(sa.func.count()).select_from(Registration)
                             .where(*RegistrationFilter(ds_id).clauses()))
    batches = db.session.scalar(sa.select(sa.func.count()).select_from(DeletionBatch)
                                .where(DeletionBatch.data_source_id == ds_id))
    result = {"rows_before": before[0], "rows_after": after[0], "same_content": before == after, "live": live,
              "counter": data_source.registration_count,
              "hidden_through": getattr(data_source, "hidden_through_id", None), "batches": batches}
    db.session.commit()
    result["intact"] = (result["same_content"] and live == NEIGHBOUR_ROWS == after[0]
                        and result["counter"] == NEIGHBOUR_ROWS and result["hidden_through"] is None and not batches)
    return result


def report(results, args):
    """Print the medians and the memory figures as a table, each run's figures below."""
    raw = statistics.median(results["raw"])
    ops = results["operation"]
    med = {key: statistics.median(run[key] for run in ops) for key in ("visible", "moved", "purge", "gone", "page_seconds")}
    print()
    print(f"Delete all registrations of a data source of {TARGET_ROWS:,} beside one of {NEIGHBOUR_ROWS:,} "
          f"(PostgreSQL, chunks of {args.chunk_size:,}, median of {args.repeats})")
    if args.setup_sql:
        print("Schema changed before loading by: " + "; ".join(args.setup_sql))
    header = f"{'figure':<44} {'raw DELETE':>10} {'operation':>10} {'ratio':>7} {'goal':>7}  result"
    print(header)
    print("-" * len(header))
    rows = [("(a) until the data source shows none", "visible"), ("(b) until the rows are physically gone", "gone")]
    for label, key in rows:
        ratio = med[key] / raw
        goal = GOALS[key]
        print(f"{label:<44} {raw:>9.3f}s {med[key]:>9.3f}s {ratio:>6.2f}x {'<=' + str(goal) + 'x':>7}  "
              f"{'PASS' if ratio <= goal else 'OVER'}")
    print(f"{'    of which delete_all_registrations':<44} {'':>10} {med['moved']:>9.3f}s {med['moved'] / raw:>6.2f}x")
    print(f"{'    of which purge_batch':<44} {'':>10} {med['purge']:>9.3f}s {med['purge'] / raw:>6.2f}x")
    memory = results["memory"]
    if memory:
        small, big = (memory[size] for size in MEMORY_SIZES)
        growth = big["horse_peak_kb"] / small["horse_peak_kb"]
        goal = GOALS["memory"]
        label = f"worker peak RSS {MEMORY_SIZES[0] // 1000}k -> {MEMORY_SIZES[1] // 1_000_000}M rows"
        print(f"{label:<44} {small['horse_peak_kb'] / 1024:>8.1f}MB {big['horse_peak_kb'] / 1024:>8.1f}MB "
              f"{growth:>6.2f}x {'<=' + str(goal) + 'x':>7}  {'PASS' if growth <= goal else 'OVER'}")
    neighbour = results["neighbour"]
    print(f"{'other data source (' + format(NEIGHBOUR_ROWS, ',') + ' rows) intact':<44} "
          f"{'yes' if neighbour['intact'] else 'NO':>10}   ({neighbour['rows_after']:,} rows, {neighbour['live']:,} live, "
          f"counter {neighbour['counter']:,}, every column unchanged: {neighbour['same_content']})")
    print()
    print("raw DELETE runs: " + ", ".join(f"{s:.3f}" for s in results["raw"]) + " s")
    for key, label in (("visible", "shows none"), ("moved", "delete_all"), ("purge", "purge"), ("gone", "gone")):
        print(f"operation {label} runs: " + ", ".join(f"{run[key]:.3f}" for run in ops) + " s")
    print("first page of the data source read as soon as the rows were hidden: 0 rows in "
          + ", ".join(f"{run['page_seconds'] * 1000:.1f}" for run in ops) + " ms")
    for size, figures in memory.items():
        print(f"worker at {size:,} rows: work horse peak RSS (VmHWM) {figures['horse_peak_kb'] / 1024:.1f} MB, "
              f"job ran {figures['horse_seconds']:.1f} s; worker parent RSS when it forked "
              f"{figures['worker_rss_at_fork_kb'] / 1024:.1f} MB, parent peak {figures['worker_peak_kb'] / 1024:.1f} MB, "
              f"other children peak {figures['other_children_peak_kb'] / 1024:.1f} MB"
              + (f"; queued again {figures['requeued']}x after Redis lost it" if figures["requeued"] else ""))
    print("\nMethod: in one process, each run loads two fresh data sources of "
          f"{TARGET_ROWS:,} rows (same shape, generate_series) and VACUUM ANALYZEs; one is deleted by a raw "
          "DELETE, the other by delete_all_registrations then purge_batch of its batch; which goes first "
          "alternates per run; each follows VACUUM and CHECKPOINT, starts on a new connection (as a worker's job "
          "does) and includes its commits. (a) ends when the operation commits what hides the rows (its first "
          "commit after its first progress report; checked from a second connection: counter 0, "
          "first page empty; the check's time is left out). Autovacuum is off for the two tables. Memory: "
          "a real `flask --app app worker --burst` runs the job queued by start_delete_all; the work horse's "
          "VmHWM (peak resident set) is polled every 10 ms from /proc; it starts from the pages it shares "
          "with the worker parent, so equal peaks mean the job added nothing that grows with the rows.")


if __name__ == "__main__":
    sys.exit(main())
