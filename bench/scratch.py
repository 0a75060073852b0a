"""Shared setup of the benchmarks: a scratch PostgreSQL database, bulk-loaded registrations, settling.

Rows are generated inside PostgreSQL (generate_series), never in Python, so loading a
million takes seconds and the benchmark process stays small.
"""

import contextlib
import os

import sqlalchemy as sa

from portal.extensions import db

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

# One registration per n, in date order as imports append them: `per_day` a day from
# `first_day`, employees in turn, distinct external ids within the data source.
LOAD_SQL = """
INSERT INTO registration (data_source_id, external_id, employee_id, occurred_on, "values", updated_at)
SELECT :ds, 'EXT-' || lpad(n::text, 8, '0'), e.id,
       :first_day + ((n - 1) / :per_day)::int,
       json_build_object('amount', (n::bigint * 7919) % 100000),
       timestamp '2025-04-01' + n * interval '1 second'
FROM generate_series(1, :total) AS n
JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM employee WHERE organization_id = :org) AS e
  ON e.k = n % :employees
ORDER BY n
"""


@contextlib.contextmanager
def scratch_database(keep=False):
    """Create `portal_bench_<pid>` beside BENCH_POSTGRES_URL's database; yield its URL; drop it after.

    With keep=True the database is left for inspection and its URL printed.
    """
    base_url = sa.make_url(os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    name = f"portal_bench_{os.getpid()}"
    admin = sa.create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = base_url.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        if keep:
            print(f"\nKept the scratch database: {sa.make_url(url).render_as_string(hide_password=True)}")
        else:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def load_registrations(ds_id, org_id, total, *, first_day, per_day, employees):
    """Insert `total` registrations into data source ds_id in one statement (committed)."""
    db.session.execute(sa.text(LOAD_SQL), {
        "ds": ds_id, "org": org_id, "first_day": first_day, "per_day": per_day,
        "total": total, "employees": employees,
    })
    db.session.commit()


def maintenance(command):
    """Run VACUUM-like commands, which refuse to run inside a transaction."""
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(command))


def settle(fresh_connection=False):
    """Start each measurement from the same state: dead rows vacuumed, then a fresh checkpoint.

    After the checkpoint both sides pay the same full-page writes for the pages they first touch.
    With fresh_connection the pool is emptied too, so the measurement runs on a new connection
    (as a worker's job does) and inherits no prepared statements or cached plans from earlier ones.
    """
    db.session.remove()
    maintenance("VACUUM registration, hidden_registration")
    maintenance("CHECKPOINT")
    if fresh_connection:
        db.engine.dispose()
