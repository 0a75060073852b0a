"""Employees: counts in one query, deactivating and reactivating that keeps every registration, permissions."""

import re
from datetime import date

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import AuditEvent, DataSource, Employee, Registration
from portal.operations.deletion import Selection, delete_registrations
from portal.operations.employees import deactivate_employee, employees_with_counts, reactivate_employee
from portal.operations.listing import RegistrationFilter, count_matching


def counts(organization_id):
    return {row.employee.name: row.registrations for row in employees_with_counts(organization_id)}


def registrations_of(employee_id):
    """Every registration row of an employee, exactly, whatever any page shows."""
    return db.session.execute(
        sa.select(Registration.id, Registration.data_source_id, Registration.external_id, Registration.occurred_on)
        .where(Registration.employee_id == employee_id).order_by(Registration.id)
    ).all()


def employee(employee_id):
    db.session.expire_all()
    return db.session.get(Employee, employee_id)


def audit_events(action):
    return db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action)).all()


def row_of(html, name):
    """The table row of one employee."""
    return re.search(rf'<tr id="employee-\d+">\s*<th scope="row">{name}</th>.*?</tr>', html, re.S).group(0)


@pytest.fixture
def lead(client, auth, world):
    auth.login("lead@acme.test")
    return client


# The operations

def test_counts_are_per_employee_of_the_organization_only(app, world):
    # Ann: 15 calls, 30 deals, 5 activities; Ben: the other 15 calls; Globex's Gus is not Acme's.
    assert counts(world.acme) == {"Ann Able": 50, "Ben Baker": 15}
    assert counts(world.globex) == {"Gus Globex": 30}


def test_counts_take_one_grouped_query_whatever_the_number_of_employees(app, world):
    acme = world.acme
    db.session.add_all([Employee(organization_id=acme, name=f"New {n}", email=f"new{n}@acme.test") for n in range(20)])
    db.session.commit()
    statements = []

    def remember(conn, cursor, statement, *args):
        statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", remember)
    try:
        rows = employees_with_counts(acme)
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", remember)
    assert len(rows) == 22 and sum(row.registrations for row in rows) == 65
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1
    assert "GROUP BY" in statements[0].upper()


def test_counts_leave_out_deleted_registrations_and_data_sources_being_deleted(app, world):
    ids = frozenset(db.session.scalars(sa.select(Registration.id).where(
        Registration.data_source_id == world.calls, Registration.employee_id == world.ann).limit(4)))
    delete_registrations(Selection(RegistrationFilter(world.calls), ids=ids), actor_id=world.lead, expected_count=4)
    assert counts(world.acme)["Ann Able"] == 46
    db.session.get(DataSource, world.deals).pending_deletion = True
    db.session.commit()
    assert counts(world.acme)["Ann Able"] == 16


def test_deactivating_keeps_every_registration_and_every_total(app, world):
    before = registrations_of(world.ann)
    period = RegistrationFilter(world.calls, date_from=date(2025, 1, 1), date_to=date(2025, 1, 10), employee_id=world.ann)
    in_period = count_matching(period)
    assert deactivate_employee(employee(world.ann), actor_id=world.lead) is True
    ann = employee(world.ann)
    assert ann.active is False and ann.deactivated_at is not None
    assert registrations_of(world.ann) == before and len(before) == 50
    assert count_matching(period) == in_period == 5
    assert db.session.get(DataSource, world.calls).registration_count == 30
    assert counts(world.acme)["Ann Able"] == 50


def test_deactivating_twice_changes_nothing_the_second_time(app, world):
    assert deactivate_employee(employee(world.ann), actor_id=world.lead) is True
    first = employee(world.ann).deactivated_at
    assert deactivate_employee(employee(world.ann), actor_id=world.lead) is False
    assert employee(world.ann).deactivated_at == first
    assert len(audit_events("deactivate_employee")) == 1


def test_reactivating_clears_the_date_and_is_audited(app, world):
    assert reactivate_employee(employee(world.ben), actor_id=world.lead) is True
    ben = employee(world.ben)
    assert ben.active is True and ben.deactivated_at is None
    assert reactivate_employee(ben, actor_id=world.lead) is False
    [event] = audit_events("reactivate_employee")
    assert (event.organization_id, event.actor_id, event.data_source_id) == (world.acme, world.lead, None)
    assert event.details == {"employee_id": world.ben, "employee_name": "Ben Baker"}
    assert event.outcome == "ok"


# The page

def test_page_lists_employees_with_status_counts_and_why_they_are_never_deleted(lead, world):
    text = lead.get("/employees").get_data(as_text=True)
    assert "Employees are never deleted: their registrations still count for the periods they worked." in text
    ann, ben = row_of(text, "Ann Able"), row_of(text, "Ben Baker")
    assert "<td>Active</td>" in ann and '<td class="num">50</td>' in ann
    assert "Deactivated" in ben and '<td class="num">15</td>' in ben
    assert 'aria-label="Deactivate Ann Able"' in ann and 'aria-label="Reactivate Ben Baker"' in ben
    assert "Gus Globex" not in text
    assert '<a href="/employees" aria-current="page">Employees</a>' in text


def test_deactivate_with_htmx_swaps_only_the_row(lead, auth, world):
    response = lead.post(f"/employees/{world.ann}/deactivate", headers=auth.htmx_headers())
    assert response.status_code == 200
    text = response.get_data(as_text=True).strip()
    assert text.startswith(f'<tr id="employee-{world.ann}">') and text.endswith("</tr>")
    assert re.search(r"Deactivated</span> since <time datetime=\"\d{4}-\d\d-\d\d\">", text)
    assert 'aria-label="Reactivate Ann Able"' in text and f'hx-post="/employees/{world.ann}/reactivate"' in text
    assert '<td class="num">50</td>' in text
    assert employee(world.ann).active is False


def test_deactivated_employees_registrations_are_still_listed_and_counted_on_the_data_source(lead, auth, world):
    lead.post(f"/employees/{world.ann}/deactivate", headers=auth.htmx_headers())
    text = lead.get(f"/data-sources/{world.calls}").get_data(as_text=True)
    assert "30 registrations" in text
    assert text.count('Ann Able <span class="badge">deactivated</span>') == 15
    narrowed = lead.get(f"/data-sources/{world.calls}?employee={world.ann}").get_data(as_text=True)
    assert narrowed.count("<code>C-") == 15


def test_without_javascript_the_form_posts_and_redirects_back(lead, auth, world):
    token = auth.csrf_token()
    response = lead.post(f"/employees/{world.ben}/reactivate", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/employees"
    text = lead.get("/employees").get_data(as_text=True)
    assert "Ben Baker is active again." in text
    assert "<td>Active</td>" in row_of(text, "Ben Baker")


def test_reactivate_is_audited_with_the_actor(lead, auth, world):
    lead.post(f"/employees/{world.ben}/reactivate", headers=auth.htmx_headers())
    lead.post(f"/employees/{world.ben}/deactivate", headers=auth.htmx_headers())
    [up], [down] = audit_events("reactivate_employee"), audit_events("deactivate_employee")
    assert (up.actor_id, down.actor_id) == (world.lead, world.lead)
    assert (up.organization_id, up.data_source_id, down.details["employee_id"]) == (world.acme, None, world.ben)


def test_viewers_see_no_buttons_and_the_endpoints_refuse(client, auth, world):
    auth.login("viewer@acme.test")
    text = client.get("/employees").get_data(as_text=True)
    assert "Ann Able" in text and "<button type=\"submit\" id=\"employee-" not in text
    assert "Deactivate" not in row_of(text, "Ann Able")
    headers = auth.htmx_headers()
    assert client.post(f"/employees/{world.ann}/deactivate", headers=headers).status_code == 403
    assert client.post(f"/employees/{world.ben}/reactivate", headers=headers).status_code == 403
    assert employee(world.ann).active is True and employee(world.ben).active is False
    assert audit_events("deactivate_employee") == [] and audit_events("reactivate_employee") == []


def test_changes_without_a_csrf_token_are_refused(lead, world):
    response = lead.post(f"/employees/{world.ann}/deactivate", headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert employee(world.ann).active is True


def test_another_organizations_employee_is_not_found(client, auth, world):
    auth.login("lead@globex.test")
    headers = auth.htmx_headers()
    assert client.post(f"/employees/{world.ann}/deactivate", headers=headers).status_code == 404
    assert client.post(f"/employees/{world.ben}/reactivate", headers=headers).status_code == 404
    assert client.post("/employees/999999/deactivate", headers=headers).status_code == 404
    assert client.get(f"/employees?organization={world.acme}").status_code == 404
    assert employee(world.ann).active is True and employee(world.ben).active is False


def test_support_staff_choose_an_organization_and_may_change_its_employees(client, auth, world):
    auth.login("support@portal.test")
    first = client.get("/employees").get_data(as_text=True)
    assert '<label for="organization">Organization</label>' in first and "Ann Able" in first
    text = client.get(f"/employees?organization={world.globex}").get_data(as_text=True)
    assert "Gus Globex" in text and "Ann Able" not in text
    assert f'<option value="{world.globex}" selected>Globex</option>' in text
    fragment = client.get(f"/employees?organization={world.globex}", headers={"HX-Request": "true"})
    assert "<html" not in fragment.get_data(as_text=True) and "Gus Globex" in fragment.get_data(as_text=True)
    response = client.post(f"/employees/{world.gus}/deactivate", data={"csrf_token": auth.csrf_token()})
    assert response.headers["Location"] == f"/employees?organization={world.globex}"
    assert employee(world.gus).active is False
    [event] = audit_events("deactivate_employee")
    assert (event.organization_id, event.actor_id) == (world.globex, world.support)
    assert client.get("/employees?organization=999999").status_code == 404


def test_employees_cannot_be_deleted_there_is_no_route(app, lead, auth, world):
    rules = [rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith("employees.")]
    assert sorted(rule.endpoint for rule in rules) == ["employees.deactivate", "employees.index", "employees.reactivate"]
    assert not any("DELETE" in rule.methods or "delete" in rule.rule for rule in rules)
    headers = auth.htmx_headers()
    assert lead.delete(f"/employees/{world.ann}", headers=headers).status_code in (404, 405)
    assert lead.post(f"/employees/{world.ann}/delete", headers=headers).status_code == 404
    assert employee(world.ann) is not None
