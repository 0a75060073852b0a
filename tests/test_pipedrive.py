"""The Pipedrive connector against the Pipedrive sandbox, both over real HTTP on loopback."""

import base64
import json
import queue
import socket
import threading
import time
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from portal.connectors.base import ConnectorConfig, ConnectorError, Period
from portal.connectors.pipedrive import (
    PipedriveReader,
    deleted_deal_id,
    register_deletion_webhook,
    remove_deletion_webhook,
)
from portal.demo import ACME_EMPLOYEES, GLOBEX_EMPLOYEES, activity_rows, deal_rows
from sandbox.pipedrive import make_server

TODAY = date(2026, 12, 31)  # the last day of the demo span: every demo row exists on both sides
WHOLE_YEAR = Period(date(2025, 1, 1), TODAY)
ACME_TOKEN = "sandbox-token"
NAMES = {email: name for name, email in ACME_EMPLOYEES + GLOBEX_EMPLOYEES}


@pytest.fixture
def start_sandbox():
    """Start sandbox servers in threads; each is stopped after the test."""
    started = []

    def start(**options):
        server = make_server(port=0, today=TODAY, **options)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        started.append((server, thread))
        return server

    yield start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def sandbox(start_sandbox):
    """A sandbox with no rate limit."""
    return start_sandbox()


@pytest.fixture
def receiver():
    """A tiny HTTP server that records each webhook pushed to it."""
    received = queue.Queue()

    class RecordWebhook(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.put((self.headers.get("Authorization"), json.loads(body)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), RecordWebhook)
    server.url = f"http://127.0.0.1:{server.server_address[1]}/webhooks/pipedrive"
    server.received = received
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def connector_config(server, source_type="deals", token=ACME_TOKEN):
    """A data source's configuration pointing at the sandbox."""
    return ConnectorConfig(source_type, settings={"base_url": server.base_url}, secrets={"api_token": token})


def fast_reader(**options):
    """A reader with small pages (so a period spans several) and short backoffs."""
    return PipedriveReader(**{"page_size": 50, "retry_delay": 0.01, "max_retry_delay": 2.0,
                              "timeout": 5.0, **options})


def period_of(rows, first, last):
    """A period starting and ending on days that have rows, so both ends are tested."""
    days = sorted(day for _, day, _, _ in rows)
    return Period(days[first], days[last])


def rows_in(rows, period):
    """The demo rows of the period, by external id."""
    return {ext: (day, email, values) for ext, day, email, values in rows if period.start <= day <= period.end}


def records_of(pages):
    """The records of all pages by external id, checking none came twice."""
    records = {record.external_id: record for page in pages for record in page}
    assert sum(len(page) for page in pages) == len(records)
    return records


@pytest.fixture(scope="module")
def http():
    """One HTTP client for the tests' own requests (a new client costs tens of milliseconds)."""
    with httpx.Client(timeout=5) as client:
        yield client


def api(http, server, method, path, token=ACME_TOKEN, **kwargs):
    """One request to the sandbox's API, as someone clicking in Pipedrive would cause."""
    return http.request(method, f"{server.base_url}{path}", headers={"x-api-token": token}, **kwargs)


def assert_records_match_rows(records, rows):
    for ext, (day, email, values) in rows.items():
        record = records[ext]
        assert (record.occurred_on, record.employee_email, record.employee_name, record.values) == \
            (day, email, NAMES[email], values), ext


def test_reading_deals_returns_exactly_the_periods_demo_deals_from_every_page(sandbox):
    rows = deal_rows("acme", TODAY)
    period = period_of(rows, 100, 300)
    pages = list(fast_reader().read(connector_config(sandbox), period))
    records = records_of(pages)
    expected = rows_in(rows, period)
    assert len(pages) > 2 and all(len(page) <= 50 for page in pages)
    assert set(records) == set(expected)
    assert_records_match_rows(records, expected)
    assert {day for day, _, _ in expected.values()} >= {period.start, period.end}


def test_reading_activities_returns_exactly_the_periods_demo_activities(sandbox):
    rows = activity_rows(TODAY)
    period = period_of(rows, 200, 400)
    records = records_of(list(fast_reader().read(connector_config(sandbox, "activities"), period)))
    expected = rows_in(rows, period)
    assert set(records) == set(expected)
    assert_records_match_rows(records, expected)
    # Some were last updated before the period began: a read bounded by update time would miss them.
    activities = sandbox.sandbox.companies["acme"].activities
    assert any(activities[int(ext)]["update_time"][:10] < activities[int(ext)]["due_date"] for ext in expected)


def test_each_api_token_reads_only_its_own_companys_deals(sandbox):
    rows = deal_rows("globex", TODAY)
    config = connector_config(sandbox, token="sandbox-token-globex")
    records = records_of(list(fast_reader().read(config, WHOLE_YEAR)))
    expected = rows_in(rows, WHOLE_YEAR)
    assert set(records) == set(expected)
    assert_records_match_rows(records, expected)


def test_a_bad_token_raises_connector_error_without_the_token(sandbox):
    secret = "wrong-token-4b9f2c"
    config = connector_config(sandbox, token=secret)
    reader = fast_reader()
    calls = [lambda: list(reader.read(config, WHOLE_YEAR)),
             lambda: list(reader.deleted_ids(config, WHOLE_YEAR)),
             lambda: register_deletion_webhook(config, "http://127.0.0.1:9/hook", "portal", "pw")]
    for call in calls:
        with pytest.raises(ConnectorError) as failure:
            call()
        assert "401" in str(failure.value) and secret not in str(failure.value)


def test_an_unreachable_pipedrive_raises_connector_error_after_bounded_attempts():
    secret = "token-in-the-wrong-place-77aa"
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]  # nothing listens here once it is closed
    waits = []
    reader = fast_reader(max_attempts=3, sleep=waits.append)
    for base_url in (f"http://127.0.0.1:{port}", f"http://{secret}@127.0.0.1:{port}"):
        config = ConnectorConfig("deals", settings={"base_url": base_url}, secrets={"api_token": secret})
        with pytest.raises(ConnectorError, match="Could not reach Pipedrive") as failure:
            list(reader.read(config, WHOLE_YEAR))
        assert secret not in str(failure.value)
    assert waits == [0.01, 0.02] * 2


def test_missing_settings_and_unknown_source_types_raise_connector_error(sandbox):
    reader = fast_reader()
    for config in (ConnectorConfig("deals", settings={"base_url": sandbox.base_url}),
                   ConnectorConfig("deals", settings={"base_url": "pipedrive.com"}, secrets={"api_token": "t"}),
                   connector_config(sandbox, source_type="leads")):
        with pytest.raises(ConnectorError):
            list(reader.read(config, WHOLE_YEAR))


def test_rate_limited_reads_wait_as_told_then_get_everything(start_sandbox):
    server = start_sandbox(rate_limit=4)
    waits = []

    def sleep(seconds):
        waits.append(seconds)
        time.sleep(seconds)

    reader = fast_reader(page_size=100, sleep=sleep)
    records = records_of(list(reader.read(connector_config(server), WHOLE_YEAR)))
    assert set(records) == set(rows_in(deal_rows("acme", TODAY), WHOLE_YEAR))
    assert server.sandbox.rate_limit.rejected > 0
    assert waits and all(wait == 1.0 for wait in waits)  # Retry-After: 1, not the 0.01 s backoff


def test_endless_rate_limiting_gives_up_after_the_allowed_attempts(start_sandbox):
    server = start_sandbox(rate_limit=1)
    waits = []
    reader = fast_reader(max_attempts=3, sleep=waits.append)
    with pytest.raises(ConnectorError, match="429") as failure:
        list(reader.read(connector_config(server), WHOLE_YEAR))
    assert "3 attempts" in str(failure.value) and ACME_TOKEN not in str(failure.value)
    assert len(waits) == 2


def test_server_errors_are_retried_with_doubling_backoff(sandbox, http):
    http.post(f"{sandbox.base_url}/sandbox/faults", json={"status": 503, "count": 3}).raise_for_status()
    waits = []
    rows = activity_rows(TODAY)
    period = period_of(rows, 0, 100)
    records = records_of(list(fast_reader(sleep=waits.append).read(connector_config(sandbox, "activities"), period)))
    assert waits == [0.01, 0.02, 0.04]
    assert set(records) == set(rows_in(rows, period))


def test_deleting_a_deal_pushes_a_delete_deal_webhook_and_lists_it_as_deleted(sandbox, receiver, http):
    config = connector_config(sandbox)
    reader = fast_reader()
    webhook_id = register_deletion_webhook(config, receiver.url, "portal", "hook-secret")
    day = next(day for ext, day, _, _ in deal_rows("acme", TODAY) if ext == "1001")
    that_day = Period(day, day)
    assert list(reader.deleted_ids(config, that_day)) == []

    response = api(http, sandbox, "DELETE", "/api/v2/deals/1001")
    assert (response.status_code, response.json()) == (200, {"success": True, "data": {"id": 1001}})

    authorization, payload = receiver.received.get(timeout=5)
    assert authorization == "Basic " + base64.b64encode(b"portal:hook-secret").decode()
    meta = payload["meta"]
    assert (meta["action"], meta["entity"], meta["entity_id"], meta["webhook_id"]) == \
        ("delete", "deal", "1001", str(webhook_id))
    assert payload["data"] is None and payload["previous"]["id"] == 1001
    assert deleted_deal_id(payload) == "1001"
    assert list(reader.deleted_ids(config, that_day)) == [["1001"]]
    assert list(reader.deleted_ids(config, Period(day + timedelta(days=1), TODAY + timedelta(days=1)))) == []
    assert "1001" not in {record.external_id for page in reader.read(config, that_day) for record in page}
    sandbox.sandbox.wait_for_deliveries()
    assert receiver.received.empty()


def test_deleted_ids_follow_every_page_and_keep_to_the_period(sandbox, http):
    rows = deal_rows("acme", TODAY)[:70]
    for ext, _, _, _ in rows:
        assert api(http, sandbox, "DELETE", f"/api/v2/deals/{ext}").status_code == 200
    config = connector_config(sandbox)
    pages = list(fast_reader().deleted_ids(config, WHOLE_YEAR))
    assert len(pages) == 2 and sorted(ext for page in pages for ext in page) == sorted(ext for ext, *_ in rows)
    period = period_of(rows, 10, 50)
    in_period = [ext for page in fast_reader().deleted_ids(config, period) for ext in page]
    assert sorted(in_period) == sorted(rows_in(rows, period))


def test_deleting_an_activity_removes_it_from_reads_and_lists_no_deleted_ids(sandbox, http):
    config = connector_config(sandbox, "activities")
    rows = activity_rows(TODAY)
    day = next(day for ext, day, _, _ in rows if ext == "5001")
    that_day = Period(day, day)

    response = api(http, sandbox, "DELETE", "/api/v2/activities/5001")
    assert (response.status_code, response.json()) == (200, {"success": True, "data": {"id": 5001}})

    read = {record.external_id for page in fast_reader().read(config, that_day) for record in page}
    assert read == set(rows_in(rows, that_day)) - {"5001"}
    assert list(fast_reader().deleted_ids(config, that_day)) == []
    assert api(http, sandbox, "DELETE", "/api/v2/activities/5001").status_code == 404


def test_a_failed_webhook_delivery_leaves_the_sandbox_serving(sandbox, http):
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{placeholder.getsockname()[1]}/hook"
    config = connector_config(sandbox)
    register_deletion_webhook(config, dead_url, "portal", "pw")
    assert api(http, sandbox, "DELETE", "/api/v2/deals/1002").status_code == 200
    sandbox.sandbox.wait_for_deliveries()
    [webhook] = api(http, sandbox, "GET", "/api/v1/webhooks").json()["data"]
    assert webhook["last_delivery_time"] is not None and webhook["last_http_status"] is None
    assert api(http, sandbox, "GET", "/api/v2/deals/1003").json()["data"]["id"] == 1003


def test_a_registered_webhook_is_listed_until_removed(sandbox, receiver, http):
    config = connector_config(sandbox)
    webhook_id = register_deletion_webhook(config, receiver.url, "portal", "hook-secret")
    [webhook] = api(http, sandbox, "GET", "/api/v1/webhooks").json()["data"]
    assert (webhook["id"], webhook["event_action"], webhook["event_object"], webhook["subscription_url"],
            webhook["http_auth_user"], webhook["version"]) == \
        (webhook_id, "delete", "deal", receiver.url, "portal", "2.0")
    assert remove_deletion_webhook(config, webhook_id) is True
    assert api(http, sandbox, "GET", "/api/v1/webhooks").json()["data"] == []
    assert remove_deletion_webhook(config, webhook_id) is False
    with pytest.raises(ConnectorError):
        register_deletion_webhook(connector_config(sandbox, "activities"), receiver.url, "portal", "pw")


def test_the_sandbox_answers_in_pipedrives_shapes(sandbox, http):
    first = api(http, sandbox, "GET", "/api/v2/deals", params={"limit": 2}).json()
    assert first["success"] is True and [d["id"] for d in first["data"]] == [1001, 1002]
    cursor = first["additional_data"]["next_cursor"]
    second = api(http, sandbox, "GET", "/api/v2/deals", params={"limit": 2, "cursor": cursor}).json()
    assert [d["id"] for d in second["data"]] == [1003, 1004]

    since = "2025-12-01T00:00:00Z"
    recent = api(http, sandbox, "GET", "/api/v2/deals", params={"limit": 500, "updated_since": since}).json()["data"]
    assert recent and all(d["update_time"] >= since for d in recent)

    unauthorized = http.get(f"{sandbox.base_url}/api/v2/deals", params={"api_token": "nope"})
    assert unauthorized.status_code == 401
    assert unauthorized.json()["success"] is False and unauthorized.json()["errorCode"] == 401
    too_many = api(http, sandbox, "GET", "/api/v2/activities", params={"limit": 501})
    assert too_many.status_code == 400 and too_many.json()["success"] is False

    empty = api(http, sandbox, "GET", "/api/v1/deals", params={"status": "deleted"}).json()
    assert empty["data"] is None and empty["additional_data"]["pagination"]["more_items_in_collection"] is False

    api(http, sandbox, "DELETE", "/api/v2/deals/1001")
    assert api(http, sandbox, "GET", "/api/v2/deals/1001").json()["data"]["is_deleted"] is True
    http.post(f"{sandbox.base_url}/sandbox/reset").raise_for_status()
    assert api(http, sandbox, "GET", "/api/v2/deals/1001").json()["data"]["is_deleted"] is False


def test_deleted_deal_id_reads_webhook_payloads_of_both_versions():
    assert deleted_deal_id({"meta": {"action": "delete", "entity": "deal", "entity_id": "42", "id": "uuid"}}) == "42"
    assert deleted_deal_id({"meta": {"action": "deleted", "object": "deal", "id": 42}}) == "42"
    assert deleted_deal_id({"meta": {"action": "change", "entity": "deal", "entity_id": "42"}}) is None
    assert deleted_deal_id({"meta": {"action": "delete", "entity": "activity", "entity_id": "7"}}) is None
    assert deleted_deal_id(["not", "a", "payload"]) is None
