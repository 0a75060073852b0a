"""Automatic deletion by webhook: the sandbox pushes delete.deal to a running portal over HTTP."""

import logging
import time
from datetime import date

import httpx
import pytest
import sqlalchemy as sa

from portal.demo import deal_rows
from portal.extensions import db
from portal.models import AuditEvent, DataSource, DeletionBatch, Field, Organization, Registration
from portal.operations.listing import RegistrationFilter
from portal.operations.webhooks import ensure_deletion_webhook, webhook_data_sources

TOKEN = {"x-api-token": "sandbox-token"}


def live_ids(data_source_id):
    return set(db.session.scalars(sa.select(Registration.external_id).where(*RegistrationFilter(data_source_id).clauses())))


def pipedrive_source(sandbox, source_type, external_ids):
    org = db.session.scalar(sa.select(Organization).where(Organization.name == "Acme"))
    ds = DataSource(organization=org, name=f"Sandbox {source_type}", connector="pipedrive", source_type=source_type,
                    settings={"base_url": sandbox.base_url}, secrets={"api_token": "sandbox-token"},
                    registration_count=len(external_ids))
    ds.fields = [Field(key="title", label="Title", type="text")]
    db.session.add(ds)
    db.session.flush()
    for ext in external_ids:
        db.session.add(Registration(data_source_id=ds.id, external_id=ext, occurred_on=date(2025, 3, 1), values={}))
    db.session.commit()
    return ds


@pytest.fixture
def deals(app, world, pipedrive_sandbox, live_server):
    ids = [ext for ext, *_ in deal_rows("acme", date(2026, 12, 31))[:5]]
    ds = pipedrive_source(pipedrive_sandbox, "deals", ids)
    ensure_deletion_webhook(ds, f"{live_server}/webhooks/pipedrive/{ds.id}")
    return ds, ids


def wait_for(condition, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.expire_all()
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_deleting_a_deal_in_pipedrive_deletes_it_here_within_seconds(deals, pipedrive_sandbox):
    ds, ids = deals
    response = httpx.delete(f"{pipedrive_sandbox.base_url}/api/v2/deals/{ids[0]}", headers=TOKEN)
    assert response.status_code == 200
    assert wait_for(lambda: ids[0] not in live_ids(ds.id)), "the webhook did not delete the registration"
    assert live_ids(ds.id) == set(ids[1:])
    batch = db.session.scalar(sa.select(DeletionBatch).where(DeletionBatch.data_source_id == ds.id))
    assert (batch.kind, batch.count, batch.status) == ("source", 1, "deleted")  # restorable
    assert db.session.get(DataSource, ds.id).registration_count == 4
    assert db.session.scalar(sa.select(AuditEvent.count).where(AuditEvent.data_source_id == ds.id)) == 1


def test_each_data_source_has_its_own_webhook_credentials(deals, app, world):
    ds, _ = deals
    secrets = db.session.get(DataSource, ds.id).secrets
    assert secrets["webhook_user"] == f"portal-{ds.id}" and len(secrets["webhook_password"]) >= 24
    assert [d.id for d in webhook_data_sources()] == [world.deals, world.globex_deals, ds.id]


def payload(deal_id):
    return {"meta": {"action": "delete", "entity": "deal", "entity_id": str(deal_id), "id": "evt-1"},
            "data": None, "previous": {"id": int(deal_id)}}


def test_a_replayed_or_duplicated_event_is_harmless(deals, live_server):
    ds, ids = deals
    secrets = db.session.get(DataSource, ds.id).secrets
    auth = (secrets["webhook_user"], secrets["webhook_password"])
    url = f"{live_server}/webhooks/pipedrive/{ds.id}"
    first = httpx.post(url, json=payload(ids[1]), auth=auth)
    again = httpx.post(url, json=payload(ids[1]), auth=auth)
    assert (first.status_code, first.json()["deleted"]) == (200, 1)
    assert (again.status_code, again.json()["deleted"]) == (200, 0)
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(DeletionBatch)) == 1
    assert live_ids(ds.id) == set(ids) - {ids[1]}


def test_an_event_for_an_unknown_id_is_acknowledged_and_ignored(deals, live_server):
    ds, ids = deals
    secrets = db.session.get(DataSource, ds.id).secrets
    response = httpx.post(f"{live_server}/webhooks/pipedrive/{ds.id}", json=payload(99999),
                          auth=(secrets["webhook_user"], secrets["webhook_password"]))
    assert (response.status_code, response.json()["deleted"]) == (200, 0)
    db.session.expire_all()
    assert live_ids(ds.id) == set(ids)


def test_wrong_credentials_are_rejected_and_logged(deals, live_server, caplog):
    ds, ids = deals
    url = f"{live_server}/webhooks/pipedrive/{ds.id}"
    with caplog.at_level(logging.WARNING, logger="portal.views.webhooks"):
        wrong = httpx.post(url, json=payload(ids[2]), auth=(f"portal-{ds.id}", "guess"))
        missing = httpx.post(url, json=payload(ids[2]))
    assert wrong.status_code == 401 and missing.status_code == 401
    assert "Rejected a Pipedrive webhook" in caplog.text and "guess" not in caplog.text
    other = httpx.post(f"{live_server}/webhooks/pipedrive/{db.session.get(DataSource, ds.id).id}", json=payload(ids[2]),
                       auth=("portal-999", db.session.get(DataSource, ds.id).secrets["webhook_password"]))
    assert other.status_code == 401
    db.session.expire_all()
    assert live_ids(ds.id) == set(ids)


def test_deleting_an_activity_in_pipedrive_changes_nothing_here(app, world, pipedrive_sandbox, live_server):
    from portal.demo import activity_rows

    ids = [ext for ext, *_ in activity_rows(date(2026, 12, 31))[:3]]
    ds = pipedrive_source(pipedrive_sandbox, "activities", ids)
    assert ds.id not in [d.id for d in webhook_data_sources()]
    assert httpx.delete(f"{pipedrive_sandbox.base_url}/api/v2/activities/{ids[0]}", headers=TOKEN).status_code == 200
    time.sleep(0.5)
    db.session.expire_all()
    assert live_ids(ds.id) == set(ids)
    assert httpx.post(f"{live_server}/webhooks/pipedrive/{ds.id}", json=payload(ids[0])).status_code == 404
