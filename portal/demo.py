"""The demo: two organizations, their people and data sources, and the demo original database.

The rows are generated from fixed seeds, so a Pipedrive sandbox seeded from the same
functions holds the same deals and activities as the demo data sources.
"""

import os
import random
from datetime import date, timedelta

from sqlalchemy import create_engine, insert, select, text

from portal.extensions import db
from portal.models import DataSource, Employee, Field, Organization, Registration, Role, User, utcnow

DEMO_PASSWORD = "demo-password"
FIRST_DAY = date(2025, 1, 1)
ROWS_PER_SOURCE = 680
# Days are drawn from a fixed two-year span and rows after "today" left out, so a source
# seeded on another day (the Pipedrive sandbox) holds the same rows for every past day.
SPAN_DAYS = 730

ACME_EMPLOYEES = [
    ("Alice Andersen", "alice@acme.test"),
    ("Bob Berg", "bob@acme.test"),
    ("Carla Cruz", "carla@acme.test"),
    ("Dev Patel", "dev@acme.test"),
    ("Emma Ek", "emma@acme.test"),
    ("Frank Olsen", "frank@acme.test"),  # left at the end of June 2025: deactivated
    ("Greta Holm", "greta@acme.test"),
]
DEACTIVATED_EMAIL = "frank@acme.test"
DEACTIVATED_AFTER = date(2025, 6, 30)
GLOBEX_EMPLOYEES = [
    ("Hank Scorpio", "hank@globex.test"),
    ("Ivy Lindqvist", "ivy@globex.test"),
    ("Jon Mertens", "jon@globex.test"),
]

FIELDS = {
    "deals": [("title", "Title", "text"), ("value", "Value", "number"),
              ("currency", "Currency", "text"), ("stage", "Stage", "text"), ("status", "Status", "text")],
    "activities": [("subject", "Subject", "text"), ("type", "Type", "text"),
                   ("duration_minutes", "Duration (min)", "number"), ("done", "Done", "boolean")],
    "sales": [("product", "Product", "text"), ("amount", "Amount", "number")],
    "calls": [("phone", "Phone", "text"), ("duration_seconds", "Duration (s)", "number"),
              ("outcome", "Outcome", "text")],
}

PRODUCTS = ["Starter plan", "Team plan", "Enterprise plan", "Onboarding", "Support add-on"]
STAGES = ["Qualified", "Proposal", "Negotiation", "Won"]
ACTIVITY_TYPES = ["call", "meeting", "email", "task"]
OUTCOMES = ["answered", "voicemail", "no answer", "booked meeting"]


def _employee_email(rng, emails, day):
    """Pick who did the work; the deactivated employee only worked until they left."""
    candidates = [e for e in emails if e != DEACTIVATED_EMAIL or day <= DEACTIVATED_AFTER]
    return rng.choice(candidates)


def _rows(seed, emails, make_values, first_id, today=None):
    """Deterministic (external id, day, employee email, values) rows."""
    rng = random.Random(seed)
    last_day = today or date.today()
    rows = []
    for n in range(ROWS_PER_SOURCE):
        day = FIRST_DAY + timedelta(days=rng.randint(0, SPAN_DAYS - 1))
        row = (str(first_id + n), day, _employee_email(rng, emails, day), make_values(rng, n))
        if day <= last_day:
            rows.append(row)
    return rows


def deal_rows(organization="acme", today=None):
    """The demo's Pipedrive deals for an organization."""
    emails = [e for _, e in (ACME_EMPLOYEES if organization == "acme" else GLOBEX_EMPLOYEES)]
    first_id = 1001 if organization == "acme" else 9001

    def values(rng, n):
        return {"title": f"{rng.choice(PRODUCTS)} for customer {rng.randint(100, 999)}",
                "value": rng.randrange(500, 50000, 50), "currency": "EUR",
                "stage": rng.choice(STAGES), "status": "won" if rng.random() < 0.6 else "open"}

    return _rows(f"deals-{organization}", emails, values, first_id, today)


def activity_rows(today=None):
    """The demo's Pipedrive activities (Acme)."""
    emails = [e for _, e in ACME_EMPLOYEES]

    def values(rng, n):
        kind = rng.choice(ACTIVITY_TYPES)
        return {"subject": f"{kind.capitalize()} with lead {rng.randint(100, 999)}", "type": kind,
                "duration_minutes": rng.choice([15, 30, 45, 60]), "done": rng.random() < 0.8}

    return _rows("activities-acme", emails, values, 5001, today)


def sales_rows(today=None):
    """The rows of table `sales` in the demo original database."""
    emails = [e for _, e in ACME_EMPLOYEES]

    def values(rng, n):
        return {"product": rng.choice(PRODUCTS), "amount": rng.randrange(100, 20000, 10)}

    return _rows("sales-acme", emails, values, 1, today)


def call_rows(today=None):
    """The Call log's manual registrations."""
    emails = [e for _, e in ACME_EMPLOYEES]

    def values(rng, n):
        return {"phone": f"+45 {rng.randint(20000000, 99999999)}",
                "duration_seconds": rng.randint(20, 1800), "outcome": rng.choice(OUTCOMES)}

    return _rows("calls-acme", emails, values, 1, today)


def database_has_data():
    """Whether any organization exists already."""
    return db.session.scalar(select(Organization.id).limit(1)) is not None


def pipedrive_base_url():
    """Where the demo's Pipedrive sandbox listens."""
    return f"http://127.0.0.1:{os.environ.get('PIPEDRIVE_SANDBOX_PORT', '5055')}"


def seed(source_database_url):
    """Create the demo; returns a one-line summary."""
    acme = Organization(name="Acme Sales")
    globex = Organization(name="Globex")
    db.session.add_all([acme, globex])
    db.session.flush()
    for email, role, org in [
        ("lead@acme.test", Role.LEAD, acme),
        ("viewer@acme.test", Role.VIEWER, acme),
        ("lead@globex.test", Role.LEAD, globex),
        ("support@portal.test", Role.SUPPORT, None),
    ]:
        user = User(email=email, role=role, organization=org, name=email.split("@")[0].title())
        user.set_password(DEMO_PASSWORD)
        db.session.add(user)
    acme_staff = _employees(acme, ACME_EMPLOYEES)
    globex_staff = _employees(globex, GLOBEX_EMPLOYEES)
    acme_staff[DEACTIVATED_EMAIL].active = False
    acme_staff[DEACTIVATED_EMAIL].deactivated_at = utcnow()

    pipedrive = {"settings": {"base_url": pipedrive_base_url()}, "secrets": {"api_token": "sandbox-token"}}
    globex_pipedrive = {"settings": {"base_url": pipedrive_base_url()}, "secrets": {"api_token": "sandbox-token-globex"}}
    _data_source(acme, "Pipedrive Deals", "pipedrive", "deals", FIELDS["deals"], deal_rows("acme"), acme_staff, **pipedrive)
    _data_source(acme, "Pipedrive Activities", "pipedrive", "activities", FIELDS["activities"], activity_rows(), acme_staff, **pipedrive)
    sales = sales_rows()
    _data_source(
        acme, "Sales database", "sql", "table", FIELDS["sales"], sales, acme_staff,
        settings={"table": "sales", "id_column": "id", "date_column": "sold_at",
                  "employee_column": "employee_email"},
        secrets={"url": source_database_url},
    )
    _data_source(acme, "Call log", "manual", "manual", FIELDS["calls"], call_rows(), acme_staff)
    _data_source(globex, "Globex Deals", "pipedrive", "deals", FIELDS["deals"], deal_rows("globex"), globex_staff, **globex_pipedrive)
    db.session.commit()
    write_source_database(source_database_url, sales)
    return "Seeded the demo: Acme Sales (4 data sources) and Globex (1); password demo-password."


def _employees(org, people):
    staff = {email: Employee(organization=org, name=name, email=email) for name, email in people}
    db.session.add_all(staff.values())
    db.session.flush()
    return staff


def _data_source(org, name, connector, source_type, fields, rows, staff, settings=None, secrets=None):
    ds = DataSource(organization=org, name=name, connector=connector, source_type=source_type,
                    settings=settings or {}, secrets=secrets or {}, registration_count=len(rows))
    ds.fields = [Field(key=k, label=label, type=t, position=i) for i, (k, label, t) in enumerate(fields)]
    db.session.add(ds)
    db.session.flush()
    db.session.execute(
        insert(Registration),
        [{"data_source_id": ds.id, "external_id": ext, "occurred_on": day,
          "employee_id": staff[email].id, "values": values, "updated_at": utcnow()}
         for ext, day, email, values in rows],
    )
    return ds


def write_source_database(url, rows):
    """Create the demo original database with its `sales` table."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS sales"))
        conn.execute(text(
            "CREATE TABLE sales (id INTEGER PRIMARY KEY, sold_at DATE NOT NULL, "
            "employee_email TEXT NOT NULL, amount NUMERIC NOT NULL, product TEXT NOT NULL)"
        ))
        conn.execute(
            text("INSERT INTO sales (id, sold_at, employee_email, amount, product) "
                 "VALUES (:id, :sold_at, :email, :amount, :product)"),
            [{"id": int(ext), "sold_at": day.isoformat(), "email": email,
              "amount": v["amount"], "product": v["product"]} for ext, day, email, v in rows],
        )
    engine.dispose()
