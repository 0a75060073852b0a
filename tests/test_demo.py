"""The demo seed: organizations, users, data sources and the demo original database."""

from datetime import date

import sqlalchemy as sa

from portal.demo import DEMO_PASSWORD
from portal.extensions import db
from portal.models import DataSource, Employee, Organization, Registration, Role, User


def test_seed_demo_creates_the_demo_and_refuses_to_run_twice(app, runner):
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    users = {u.email: u for u in db.session.scalars(sa.select(User))}
    assert users["lead@acme.test"].role == Role.LEAD
    assert users["viewer@acme.test"].role == Role.VIEWER
    assert users["lead@globex.test"].organization.name == "Globex"
    assert users["support@portal.test"].role == Role.SUPPORT
    assert all(u.check_password(DEMO_PASSWORD) for u in users.values())

    acme = db.session.scalar(sa.select(Organization).where(Organization.name == "Acme Sales"))
    sources = {ds.name: ds for ds in db.session.scalars(sa.select(DataSource).where(DataSource.organization_id == acme.id))}
    assert set(sources) == {"Pipedrive Deals", "Pipedrive Activities", "Sales database", "Call log"}
    assert (sources["Pipedrive Deals"].connector, sources["Pipedrive Deals"].source_type) == ("pipedrive", "deals")
    assert (sources["Pipedrive Activities"].source_type) == "activities"
    assert sources["Sales database"].connector == "sql" and sources["Call log"].connector == "manual"
    for ds in sources.values():
        rows = db.session.execute(
            sa.select(sa.func.count(), sa.func.min(Registration.occurred_on), sa.func.count(sa.distinct(Registration.employee_id)))
            .where(Registration.data_source_id == ds.id)
        ).one()
        assert rows[0] >= 600 and rows[0] == ds.registration_count
        assert rows[1] >= date(2025, 1, 1) and rows[2] >= 6
        assert len(ds.fields) >= 2
    employees = db.session.scalars(sa.select(Employee).where(Employee.organization_id == acme.id)).all()
    assert len(employees) >= 6 and sum(not e.active for e in employees) == 1

    source = sa.create_engine(app.config["DEMO_SOURCE_DATABASE"])
    with source.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM sales")).scalar() == sources["Sales database"].registration_count
        assert set(conn.execute(sa.text("SELECT * FROM sales LIMIT 1")).keys()) >= {"id", "sold_at", "employee_email", "amount", "product"}
    source.dispose()

    again = runner.invoke(args=["seed-demo"])
    assert again.exit_code != 0 and "already has data" in again.output
    assert runner.invoke(args=["seed-demo", "--if-empty"]).exit_code == 0
