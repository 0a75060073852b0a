"""The JSON API of manual data sources: tokens created in the settings, shown once, revoked; registrations
sent with one, validated like a CSV file's rows, all or nothing unless the mode says valid rows."""

import re
from datetime import date

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import ApiToken, AuditEvent, DataSource, Field, Registration
from portal.operations.api_tokens import create_token, digest

both_databases = pytest.mark.parametrize("db_backend", ["sqlite", "postgresql"])
URL = "/api/v1/data-sources/{}/registrations"


@pytest.fixture
def calls(app, world):
    """Calls (manual), with a text and a yes/no field besides its amount."""
    ds = db.session.get(DataSource, world.calls)
    ds.fields.append(Field(key="outcome", label="Outcome", type="text", position=1))
    ds.fields.append(Field(key="won", label="Won", type="boolean", position=2))
    db.session.commit()
    return ds


@pytest.fixture
def token(calls, world):
    return create_token(calls, world.lead)[1]


def send(client, data_source_id, token, body, **headers):
    return client.post(URL.format(data_source_id), json=body,
                       headers={"Authorization": f"Bearer {token}", **headers} if token else headers)


def registrations(data_source_id):
    return {ext: (day, values) for ext, day, values in db.session.execute(
        sa.select(Registration.external_id, Registration.occurred_on, Registration.values)
        .where(Registration.data_source_id == data_source_id))}


GOOD = [{"external_id": "API-1", "date": "2025-03-01", "employee_email": "ann@acme.test",
         "values": {"amount": 12.5, "outcome": "Call back", "won": False}},
        {"external_id": 2, "date": "2025-03-02", "values": {"amount": 7}}]


@both_databases
def test_registrations_sent_with_a_token_are_added_and_sending_them_again_changes_nothing(client, world, calls,
                                                                                         token):
    before = registrations(calls.id)
    response = send(client, calls.id, token, {"registrations": GOOD})
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"imported": True, "new": 2, "updated": 0, "unchanged": 0,
                                   "skipped_suppressed": 0, "employees_created": 0, "problems": []}
    got = registrations(calls.id)
    assert got["API-1"] == (date(2025, 3, 1), {"amount": 12.5, "outcome": "Call back", "won": False})
    assert got["2"] == (date(2025, 3, 2), {"amount": 7})
    assert len(got) == len(before) + 2
    db.session.expire_all()
    assert db.session.get(DataSource, calls.id).registration_count == len(before) + 2

    again = send(client, calls.id, token, {"registrations": GOOD}).get_json()
    assert (again["new"], again["updated"], again["unchanged"]) == (0, 0, 2)
    changed = send(client, calls.id, token, {"registrations": [{**GOOD[1], "values": {"amount": 8}}]}).get_json()
    assert (changed["new"], changed["updated"]) == (0, 1) and registrations(calls.id)["2"][1] == {"amount": 8}
    event = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "manual_import")
                               .order_by(AuditEvent.id)).first()
    assert event.actor_id is None and event.details["file"].startswith("JSON API (token dsp_")
    assert token not in str(event.details)
    assert db.session.scalar(sa.select(ApiToken.last_used_at)) is not None


def test_bad_registrations_are_named_and_nothing_is_imported_unless_the_mode_says_valid_rows(client, calls, token):
    before = registrations(calls.id)
    body = {"registrations": [
        GOOD[0],
        {"external_id": "API-3", "date": "2025-02-30", "values": {"amount": "lots"}},
        {"date": "2025-03-03"},
        {"external_id": "API-4", "date": "2025-03-04", "values": {"colour": "red", "won": "maybe"}},
        {"external_id": "API-5", "date": "2025-03-05", "values": {"amount": [1]}, "extra": 1},
        {"external_id": "DUP", "date": "2025-03-06"}, {"external_id": "DUP", "date": "2025-03-07"},
        "not an object",
    ]}
    response = send(client, calls.id, token, body)
    assert response.status_code == 422
    answer = response.get_json()
    assert answer["imported"] is False and "Nothing was imported: 7 of the registrations" in answer["error"]
    reasons = {p["index"]: p["reason"] for p in answer["problems"]}
    assert sorted(reasons) == [1, 2, 3, 4, 5, 6, 7]
    assert "“2025-02-30” is not a date" in reasons[1] and "“lots” is not a number" in reasons[1]
    assert "needs an external_id" in reasons[2]
    assert "“colour” is not a field" in reasons[3] and "amount, outcome, won" in reasons[3]
    assert "Unknown key 'extra'" in reasons[4] and "must be a number, text, true, false or null" in reasons[4]
    assert "is at indexes 5, 6" in reasons[5] and "is at indexes 5, 6" in reasons[6]
    assert "must be a JSON object" in reasons[7]
    assert registrations(calls.id) == before  # nothing changed

    partial = send(client, calls.id, token, {**body, "mode": "valid_rows"})
    assert partial.status_code == 200 and partial.get_json()["new"] == 1 and len(partial.get_json()["problems"]) == 7
    assert set(registrations(calls.id)) - set(before) == {"API-1"}


def test_bad_requests_get_a_clear_message_and_change_nothing(client, world, calls, token):
    before = registrations(calls.id)
    cases = [
        (send(client, calls.id, token, {"rows": GOOD}), 400, 'list "registrations"'),
        (send(client, calls.id, token, {"registrations": []}), 400, "is empty"),
        (send(client, calls.id, token, {"registrations": GOOD, "mode": "some"}), 400, '"mode" must be one of'),
        (send(client, calls.id, token, {"registrations": [GOOD[1]] * 5001}), 413, "at most 5,000"),
        (client.post(URL.format(calls.id), data="{not json", headers={"Authorization": f"Bearer {token}"}), 400,
         'list "registrations"'),
    ]
    from portal.jobs.delete_all import start_delete_all
    from portal.models import User

    start_delete_all(calls, db.session.get(User, world.lead))  # queued: it holds the data source
    cases.append((send(client, calls.id, token, {"registrations": GOOD}), 409, "is already running"))
    for response, status, message in cases:
        assert response.status_code == status and message in response.get_json()["error"]
    assert registrations(calls.id) == before


def test_a_missing_wrong_revoked_or_other_data_sources_token_is_refused_alike(app, client, auth, world, calls, token):
    other = create_token(calls, world.lead)[1]
    unknown_token = "dsp_" + "x" * 43
    refused = [send(client, calls.id, None, {"registrations": GOOD}),
               send(client, calls.id, unknown_token, {"registrations": GOOD}),
               send(client, calls.id, token + "x", {"registrations": GOOD}),
               send(client, world.deals, token, {"registrations": GOOD}),  # the token of Calls, for Deals
               client.post(URL.format(calls.id), json={"registrations": GOOD},
                           headers={"Authorization": f"Basic {token}"})]
    for response in refused:
        assert response.status_code == 401 and "API token" in response.get_json()["error"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    auth.login("lead@acme.test")  # a session counts for nothing here: only the token does
    assert send(client, calls.id, None, {"registrations": GOOD}).status_code == 401
    row = db.session.scalar(sa.select(ApiToken).where(ApiToken.token_digest == digest(token)))
    dialog = client.get(f"/data-sources/{calls.id}/api-tokens/{row.id}/revoke", headers=auth.htmx_headers())
    assert "<dialog" in dialog.get_data(as_text=True) and "This cannot be undone" in dialog.get_data(as_text=True)
    assert send(client, calls.id, token, {"registrations": GOOD}).status_code == 200  # asking changed nothing
    response = client.post(f"/data-sources/{calls.id}/api-tokens/{row.id}/revoke",
                           data={"csrf_token": auth.csrf_token()})
    assert response.status_code == 302
    assert send(client, calls.id, token, {"registrations": GOOD}).status_code == 401
    assert send(client, calls.id, other, {"registrations": GOOD}).status_code == 200  # the other one still works


def test_a_lead_creates_a_token_which_is_shown_once_and_only_its_digest_is_kept(client, auth, world, calls):
    auth.login("lead@acme.test")
    settings = client.get(f"/data-sources/{calls.id}/settings").get_data(as_text=True)
    assert "No API tokens." in settings and f'action="/data-sources/{calls.id}/api-tokens"' in settings
    assert client.post(f"/data-sources/{calls.id}/api-tokens").status_code == 400  # no CSRF token
    response = client.post(f"/data-sources/{calls.id}/api-tokens", data={"csrf_token": auth.csrf_token()})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    token = re.search(r'id="api-token" class="token" value="(dsp_[^"]+)"', response.get_data(as_text=True)).group(1)
    row = db.session.scalar(sa.select(ApiToken))
    assert row.token_digest == digest(token) and token not in (row.prefix, row.token_digest)
    assert token.startswith(row.prefix)
    settings = client.get(f"/data-sources/{calls.id}/settings").get_data(as_text=True)
    assert f"{row.prefix}…" in settings and token not in settings
    assert db.session.scalar(sa.select(AuditEvent.action).where(AuditEvent.action == "create_api_token"))
    assert send(client, calls.id, token, {"registrations": GOOD}).status_code == 200


def test_viewers_strangers_and_integrations_get_no_tokens(client, auth, world, calls):
    auth.login("viewer@acme.test")
    assert client.post(f"/data-sources/{calls.id}/api-tokens", data={"csrf_token": auth.csrf_token()}).status_code == 403
    assert "Create an API token" not in client.get(f"/data-sources/{calls.id}/settings").get_data(as_text=True)
    auth.login("lead@globex.test")
    assert client.post(f"/data-sources/{calls.id}/api-tokens", data={"csrf_token": auth.csrf_token()}).status_code == 404
    auth.login("lead@acme.test")
    assert client.post(f"/data-sources/{world.deals}/api-tokens", data={"csrf_token": auth.csrf_token()}).status_code == 404
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ApiToken)) == 0
