"""The audit log page: one organization's events newest first, filters, keyset pages, restore while it can."""

import re

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import AuditEvent, DeletionBatch, Employee, Registration, User
from portal.operations.deletion import Selection, delete_registrations, restore_batch
from portal.operations.employees import deactivate_employee
from portal.operations.listing import RegistrationFilter


def delete_three(data_source_id, actor_email="lead@acme.test", reason=""):
    actor = db.session.scalar(sa.select(User).where(User.email == actor_email))
    ids = frozenset(db.session.scalars(sa.select(Registration.id).where(
        Registration.data_source_id == data_source_id).order_by(Registration.id).limit(3)))
    return delete_registrations(Selection(RegistrationFilter(data_source_id), ids=ids), actor_id=actor.id,
                                expected_count=3, reason=reason)


def rows(html):
    """The event rows of the page, as their text without markup."""
    return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip()
            for row in re.findall(r'<tr id="audit-event-\d+">.*?</tr>', html, re.S)]


def restore_buttons(html):
    return re.findall(r'action="(/data-sources/\d+/deleted/\d+/restore)"', html)


@pytest.fixture
def events(app, world):
    """A deletion in Calls, one in Globex Deals, an employee deactivated at Acme."""
    acme_batch = delete_three(world.calls)
    globex_batch = delete_three(world.globex_deals, "lead@globex.test")
    deactivate_employee(db.session.get(Employee, world.ann), actor_id=None)
    return {"acme": acme_batch.id, "globex": globex_batch.id}


def test_a_lead_sees_their_organization_newest_first_and_can_restore_a_deletion(client, auth, world, events):
    auth.login("lead@acme.test")
    html = client.get("/audit-log").get_data(as_text=True)
    got = rows(html)
    assert len(got) == 2
    assert "Deactivated an employee: Ann Able" in got[0] and "the portal" in got[0]
    assert "Deleted registrations" in got[1] and "lead@acme.test" in got[1] and "Calls" in got[1] and " 3 " in got[1]
    assert "Globex" not in html  # no other organization's events, names or data sources
    assert restore_buttons(html) == [f"/data-sources/{world.calls}/deleted/{events['acme']}/restore"]

    response = client.post(restore_buttons(html)[0], data={"csrf_token": auth.csrf_token()})
    assert response.status_code == 302
    assert db.session.get(DeletionBatch, events["acme"]).status == "restored"
    html = client.get("/audit-log").get_data(as_text=True)
    assert "Restored registrations" in rows(html)[0] and restore_buttons(html) == []  # restored: no second undo


def test_a_viewer_reads_the_log_without_restore_buttons(client, auth, world, events):
    auth.login("viewer@acme.test")
    html = client.get("/audit-log").get_data(as_text=True)
    assert len(rows(html)) == 2 and restore_buttons(html) == []


def test_filtering_by_data_source_and_another_organizations_data_source_is_not_found(client, auth, world, events):
    auth.login("lead@acme.test")
    html = client.get(f"/audit-log?data_source={world.calls}").get_data(as_text=True)
    assert [("Calls" in row) for row in rows(html)] == [True]
    assert client.get(f"/audit-log?data_source={world.deals}").get_data(as_text=True).count('<tr id="audit-event-') == 0
    assert client.get(f"/audit-log?data_source={world.globex_deals}").status_code == 404
    assert client.get(f"/audit-log?organization={world.globex}").status_code == 404
    assert client.get("/audit-log?before=abc").status_code == 404


def test_support_staff_choose_the_organization(client, auth, world, events):
    auth.login("support@portal.test")
    acme = client.get(f"/audit-log?organization={world.acme}").get_data(as_text=True)
    globex = client.get(f"/audit-log?organization={world.globex}").get_data(as_text=True)
    assert len(rows(acme)) == 2 and len(rows(globex)) == 1 and "Globex Deals" in rows(globex)[0]
    assert restore_buttons(globex) == [f"/data-sources/{world.globex_deals}/deleted/{events['globex']}/restore"]
    by_source = client.get(f"/audit-log?data_source={world.globex_deals}").get_data(as_text=True)
    assert len(rows(by_source)) == 1  # the data source's organization, whichever was chosen before


def test_pages_go_back_in_time_by_id_without_repeating_or_skipping(app, client, auth, world):
    app.config["PAGE_SIZE"] = 4
    for _ in range(5):
        restore_batch(delete_three(world.calls).id, actor_id=None)
    auth.login("lead@acme.test")
    seen, url = [], "/audit-log"
    while url:
        html = client.get(url, headers={"HX-Request": "true"}).get_data(as_text=True)
        seen += re.findall(r'<tr id="audit-event-(\d+)">', html)
        more = re.search(r'hx-get="([^"]*before=\d+[^"]*)"', html)
        url = more.group(1).replace("&amp;", "&") if more else None
    expected = db.session.scalars(sa.select(AuditEvent.id).where(AuditEvent.organization_id == world.acme)
                                  .order_by(AuditEvent.id.desc())).all()
    assert [int(i) for i in seen] == expected and len(expected) == 10


def test_the_audit_log_needs_a_login(client, world):
    response = client.get("/audit-log")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_narrowing_to_a_kind_of_event_and_a_bad_kind_is_refused(client, auth, world, events):
    auth.login("lead@acme.test")
    deletions = rows(client.get("/audit-log?what=deletions").get_data(as_text=True))
    employees = rows(client.get("/audit-log?what=employees").get_data(as_text=True))
    assert len(deletions) == 1 and "Deleted registrations" in deletions[0]
    assert len(employees) == 1 and "Ann Able" in employees[0]
    assert client.get("/audit-log?what=imports").get_data(as_text=True).count('<tr id="audit-event-') == 0
    response = client.get("/audit-log?what=everything-please")
    assert response.status_code == 400 and "There is no kind of event" in response.get_data(as_text=True)
