"""A Pipedrive-compatible sandbox: the part of Pipedrive's public REST API the portal uses.

Run it as `python -m sandbox.pipedrive --port 5055` (the default port is PIPEDRIVE_SANDBOX_PORT,
else 5055), or inside a test with `make_server(port=0)`. The server uses only the standard
library; its data comes from `portal.demo`, so it holds the demo data sources' deals and activities.

What is where, as in Pipedrive:
- an API token belongs to a user of one company: `sandbox-token` is Acme's (deals from 1001,
  activities from 5001), `sandbox-token-globex` is Globex's (deals from 9001); sent in the
  `x-api-token` header or the `api_token` query parameter;
- deals and activities (API v2) carry only `owner_id`; the owners' names and emails are the
  company's users at `GET /api/v1/users`, and stage names are at `GET /api/v2/stages`;
- deleted deals stay listed at `GET /api/v1/deals?status=deleted` (API v1 shape, the owner
  inline as the `user_id` object, email included) until the sandbox is reset;
- deleting a deal or an activity pushes a webhooks-v2 `delete` event to every matching subscription.

Test conveniences outside Pipedrive's API: `POST /sandbox/reset` reseeds everything, and
`POST /sandbox/faults` with `{"status": 503, "count": 2}` makes the next API requests fail.
"""

import argparse
import base64
import json
import logging
import math
import os
import re
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from urllib.parse import parse_qs, urlsplit

from portal import demo

log = logging.getLogger("sandbox.pipedrive")

API_TOKENS = {"sandbox-token": "acme", "sandbox-token-globex": "globex"}
DEFAULT_LIMIT = 100
MAX_LIMIT = 500
PIPELINE_ID = 1
ERROR_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."
WEBHOOK_ACTIONS = {"create", "change", "delete", "*"}
WEBHOOK_OBJECTS = {"activity", "deal", "lead", "note", "organization", "person", "product", "user", "*"}
SEEDED_AT = datetime(2024, 12, 1, 9, 0, tzinfo=UTC)  # when the sandbox's companies were "set up"


class BadRequest(Exception):
    """A request Pipedrive would answer with 400."""


class Company:
    """One Pipedrive company: its users, stages, deals, activities and webhooks."""

    def __init__(self, company_id, domain, people, first_user_id):
        self.id = company_id
        self.domain = domain
        self.users = {first_user_id + n: _user(first_user_id + n, name, email, admin=n == 0)
                      for n, (name, email) in enumerate(people)}
        self.stages = {n: _stage(n, name) for n, name in enumerate(demo.STAGES, start=1)}
        self.deals = {}
        self.activities = {}
        self.webhooks = {}

    @property
    def token_user_id(self):
        """The user the company's API token belongs to (its admin)."""
        return min(self.users)

    def user_id_by_email(self, email):
        """The id of the user with this email."""
        return next(u["id"] for u in self.users.values() if u["email"] == email)


def seed_companies(today=None):
    """Acme and Globex, built from the same rows as the demo's Pipedrive data sources."""
    today = today or date.today()
    latest = datetime.combine(today, time_of_day(23, 59, 59), UTC)
    acme = Company(1, "acme", demo.ACME_EMPLOYEES, first_user_id=10001)
    globex = Company(2, "globex", demo.GLOBEX_EMPLOYEES, first_user_id=20001)
    for company in (acme, globex):
        for external_id, day, email, values in demo.deal_rows(company.domain, today):
            deal = _deal(int(external_id), day, company.user_id_by_email(email), company, values, latest)
            company.deals[deal["id"]] = deal
    for external_id, day, email, values in demo.activity_rows(today):
        activity = _activity(int(external_id), day, acme.user_id_by_email(email), values, latest)
        acme.activities[activity["id"]] = activity
    return {acme.domain: acme, globex.domain: globex}


def _user(user_id, name, email, admin):
    return {"id": user_id, "name": name, "email": email, "default_currency": "EUR", "locale": "en_US",
            "lang": 1, "activated": True, "active_flag": True, "is_admin": int(admin), "role_id": 1,
            "timezone_name": "Europe/Copenhagen", "has_created_company": admin, "icon_url": None,
            "created": _v1_time(_rfc3339(SEEDED_AT)), "modified": _v1_time(_rfc3339(SEEDED_AT))}


def _stage(stage_id, name):
    return {"id": stage_id, "order_nr": stage_id, "name": name, "is_deleted": False,
            "deal_probability": 100, "pipeline_id": PIPELINE_ID, "is_deal_rot_enabled": False,
            "days_to_rotten": None, "add_time": _rfc3339(SEEDED_AT), "update_time": _rfc3339(SEEDED_AT)}


def _working_hour(day, record_id):
    """A daytime UTC moment on `day`, so the day is the same in every European time zone."""
    return datetime.combine(day, time_of_day(9 + record_id % 8, record_id * 7 % 60), UTC)


def _deal(deal_id, day, owner_id, company, values, latest):
    """A v2 deal won on the demo row's day, or, if still open, added on it."""
    occurred = _working_hour(day, deal_id)
    won = values["status"] == "won"
    # A won deal was added days before it was won, and edits come later still: neither
    # add_time nor update_time is the day that counts.
    added = occurred - timedelta(days=deal_id % 21, hours=1) if won else occurred
    updated = min(occurred + timedelta(days=deal_id % 4, minutes=5), latest)
    stage_id = next(s["id"] for s in company.stages.values() if s["name"] == values["stage"])
    closed = _rfc3339(occurred) if won else None
    return {
        "id": deal_id, "title": values["title"], "creator_user_id": owner_id, "owner_id": owner_id,
        "value": values["value"], "currency": values["currency"], "person_id": None, "org_id": None,
        "pipeline_id": PIPELINE_ID, "stage_id": stage_id, "status": values["status"],
        "probability": None, "add_time": _rfc3339(added), "update_time": _rfc3339(updated),
        "stage_change_time": _rfc3339(added), "close_time": closed, "won_time": closed,
        "lost_time": None, "lost_reason": None, "expected_close_date": None,
        "local_won_date": day.isoformat() if won else None, "local_lost_date": None,
        "local_close_date": day.isoformat() if won else None, "visible_to": 3,
        "is_deleted": False, "label_ids": [], "custom_fields": {},
    }


def _activity(activity_id, day, owner_id, values, latest):
    """A v2 activity due on the demo row's day."""
    due = _working_hour(day, activity_id)
    minutes = values["duration_minutes"]
    # Activities are planned ahead and often never touched again, so update_time may well
    # be days before the due date: only the due date says which period an activity is in.
    added = due - timedelta(days=activity_id % 10, hours=1)
    done_at = due + timedelta(minutes=minutes) if values["done"] else None
    updated = min(done_at or added + timedelta(days=activity_id % 3), latest)
    return {
        "id": activity_id, "subject": values["subject"], "type": values["type"],
        "owner_id": owner_id, "creator_user_id": owner_id, "is_deleted": False,
        "add_time": _rfc3339(added), "update_time": _rfc3339(updated), "deal_id": None,
        "lead_id": None, "person_id": None, "org_id": None, "project_id": None,
        "due_date": day.isoformat(), "due_time": due.strftime("%H:%M"),
        "duration": f"{minutes // 60:02d}:{minutes % 60:02d}", "busy": False, "done": values["done"],
        "marked_as_done_time": _rfc3339(done_at) if done_at else None, "location": None,
        "participants": [], "attendees": [], "public_description": None, "priority": None, "note": None,
    }


def _v1_deal(company, deal):
    """A deal as API v1 shows it: the owner inline, status "deleted" once deleted."""
    owner = company.users[deal["owner_id"]]
    owner_ref = {"id": owner["id"], "name": owner["name"], "email": owner["email"], "has_pic": 0,
                 "pic_hash": None, "active_flag": owner["active_flag"], "value": owner["id"]}
    return {
        "id": deal["id"], "creator_user_id": owner_ref, "user_id": owner_ref, "person_id": None,
        "org_id": None, "stage_id": deal["stage_id"], "title": deal["title"], "value": deal["value"],
        "currency": deal["currency"], "add_time": _v1_time(deal["add_time"]),
        "update_time": _v1_time(deal["update_time"]),
        "stage_change_time": _v1_time(deal["stage_change_time"]),
        "active": not deal["is_deleted"] and deal["status"] == "open", "deleted": deal["is_deleted"],
        "status": "deleted" if deal["is_deleted"] else deal["status"], "probability": None,
        "lost_reason": None, "visible_to": "3", "close_time": _v1_time(deal["close_time"]),
        "pipeline_id": deal["pipeline_id"], "won_time": _v1_time(deal["won_time"]),
        "lost_time": _v1_time(deal["lost_time"]), "expected_close_date": None,
        "owner_name": owner["name"], "weighted_value": deal["value"],
    }


def _rfc3339(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _v1_time(stamp):
    """API v2's "2025-03-01T10:15:00Z" as API v1 writes it, "2025-03-01 10:15:00"."""
    return f"{stamp[:10]} {stamp[11:19]}" if stamp else None


def _parse_moment(raw):
    moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _now():
    return datetime.now(UTC).replace(microsecond=0)


class RateLimit:
    """At most `per_second` API requests in each one-second window."""

    def __init__(self, per_second):
        self.per_second = per_second
        self.rejected = 0
        self._lock = threading.Lock()
        self._window_start = time.monotonic()
        self._count = 0

    def retry_after(self):
        """Whole seconds to wait if this request is over the limit, else None."""
        with self._lock:
            now = time.monotonic()
            if now - self._window_start >= 1:
                self._window_start, self._count = now, 0
            if self._count < self.per_second:
                self._count += 1
                return None
            self.rejected += 1
            return max(1, math.ceil(1 - (now - self._window_start)))


class Sandbox:
    """Everything the server holds, behind one lock (requests arrive on many threads)."""

    def __init__(self, today=None, rate_limit=None):
        self.today = today
        self.rate_limit = RateLimit(rate_limit) if rate_limit else None
        self.lock = threading.RLock()
        self.deliveries = []
        self.reset()

    def reset(self):
        """Reseed the companies; forget webhooks and injected faults."""
        with self.lock:
            self.companies = seed_companies(self.today)
            self.faults = []
            self.next_webhook_id = 1

    def company_for(self, token):
        """The company an API token belongs to, or None."""
        return self.companies.get(API_TOKENS.get(token))

    def take_fault(self):
        """The next injected failure, if any: (status, retry_after)."""
        with self.lock:
            return self.faults.pop(0) if self.faults else None

    def notify(self, company, action, entity, entity_id, previous):
        """Push a webhooks-v2 event to each matching subscription, off the request's thread."""
        for webhook in company.webhooks.values():
            if webhook["event_action"] not in (action, "*") or webhook["event_object"] not in (entity, "*"):
                continue
            meta = {
                "action": action, "entity": entity, "entity_id": str(entity_id), "id": str(uuid.uuid4()),
                "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "version": "2.0", "type": "general", "webhook_id": str(webhook["id"]),
                "webhook_owner_id": str(webhook["owner_id"]), "company_id": str(company.id),
                "user_id": str(company.token_user_id), "correlation_id": str(uuid.uuid4()),
                "is_bulk_edit": False, "attempt": 1, "host": f"{company.domain}.pipedrive.com",
                "change_source": "api", "permitted_user_ids": sorted(str(u) for u in company.users),
            }
            body = json.dumps({"meta": meta, "data": None, "previous": previous}).encode()
            thread = threading.Thread(target=self._deliver, args=(webhook, body), daemon=True,
                                      name=f"webhook-{webhook['id']}")
            self.deliveries = [t for t in self.deliveries if t.is_alive()] + [thread]
            thread.start()

    def _deliver(self, webhook, body):
        url = webhook["subscription_url"]
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        if webhook["http_auth_user"] is not None:
            credentials = f"{webhook['http_auth_user']}:{webhook['http_auth_password'] or ''}"
            request.add_header("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())
        # Subscribers are usually on this machine: an HTTP proxy from the environment must not apply.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        status = None
        try:
            with opener.open(request, timeout=5) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
            exc.close()
        except Exception as exc:  # a broken subscriber must never take the sandbox down
            log.warning("Webhook %s: delivery to %s failed: %s", webhook["id"], url, exc)
        if status is not None and not 200 <= status < 300:
            log.warning("Webhook %s: %s answered HTTP %s", webhook["id"], url, status)
        with self.lock:
            webhook["last_delivery_time"] = _v1_time(_rfc3339(_now()))
            webhook["last_http_status"] = status

    def wait_for_deliveries(self, timeout=5.0):
        """Wait until every webhook push started so far has finished (or timed out)."""
        deadline = time.monotonic() + timeout
        with self.lock:
            started = list(self.deliveries)
        for thread in started:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self.lock:
            self.deliveries = [t for t in self.deliveries if t.is_alive()]


def _limit(query):
    raw = query.get("limit", "")
    if raw == "":
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise BadRequest("limit must be an integer") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def _moment_param(query, name):
    raw = query.get(name)
    if not raw:
        return None
    try:
        return _parse_moment(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an RFC3339 date-time, e.g. 2025-01-01T00:00:00Z") from None


def _encode_cursor(last_id):
    raw = json.dumps({"field": "id", "fieldValue": last_id, "sortDirection": "asc", "id": last_id},
                     separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor):
    if not cursor:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))["id"])
    except (ValueError, KeyError, TypeError):
        raise BadRequest("Invalid cursor") from None


def _list_v2(records, query, wanted=lambda record: True):
    """One cursor page of API v2 records, by id, within updated_since <= update_time < updated_until."""
    limit = _limit(query)
    if query.get("sort_by", "id") != "id" or query.get("sort_direction", "asc") != "asc":
        raise BadRequest("The sandbox sorts by id ascending only")
    since, until = _moment_param(query, "updated_since"), _moment_param(query, "updated_until")
    after = _decode_cursor(query.get("cursor"))
    only = _ids_param(query)
    matching = []
    for record_id in sorted(records):
        record = records[record_id]
        updated = _parse_moment(record["update_time"])
        if (record_id > after and (only is None or record_id in only) and wanted(record)
                and (since is None or updated >= since) and (until is None or updated < until)):
            matching.append(record)
            if len(matching) > limit:
                break
    page = matching[:limit]
    next_cursor = _encode_cursor(page[-1]["id"]) if len(matching) > limit else None
    return 200, {"success": True, "data": page, "additional_data": {"next_cursor": next_cursor}}


def _ids_param(query):
    """`ids`: up to 100 comma-separated ids to fetch, as Pipedrive's v2 lists take them; None when absent."""
    raw = query.get("ids")
    if raw is None:
        return None
    try:
        ids = {int(part) for part in raw.split(",") if part.strip()}
    except ValueError:
        raise BadRequest("ids must be comma-separated whole numbers") from None
    if len(ids) > 100:
        raise BadRequest("ids takes at most 100 ids")
    return ids


def _not_found(what):
    return 404, {"success": False, "error": f"{what} not found", "error_info": ERROR_INFO,
                 "data": None, "additional_data": None}


def list_deals(sandbox, company, query, body):
    """GET /api/v2/deals: not deleted deals, or only `status` ones (deleted included)."""
    status = query.get("status") or None
    if status not in (None, "open", "won", "lost", "deleted"):
        raise BadRequest("status must be one of open, won, lost, deleted")

    def wanted(deal):
        if status == "deleted":
            return deal["is_deleted"]
        return not deal["is_deleted"] and status in (None, deal["status"])

    return _list_v2(company.deals, query, wanted)


def get_deal(sandbox, company, query, body, deal_id):
    """GET /api/v2/deals/{id}: a deal, deleted ones too (Pipedrive keeps them 30 days)."""
    deal = company.deals.get(int(deal_id))
    return (200, {"success": True, "data": deal}) if deal else _not_found("Deal")


def delete_deal(sandbox, company, query, body, deal_id):
    """DELETE /api/v2/deals/{id}: mark the deal deleted and push `delete.deal` webhooks."""
    deal = company.deals.get(int(deal_id))
    if deal is None or deal["is_deleted"]:
        return _not_found("Deal")
    previous = dict(deal)
    deal.update(is_deleted=True, update_time=_rfc3339(_now()))
    sandbox.notify(company, "delete", "deal", deal["id"], previous)
    return 200, {"success": True, "data": {"id": deal["id"]}}


def list_deals_v1(sandbox, company, query, body):
    """GET /api/v1/deals: offset pages in the v1 shape; `status=deleted` lists deleted deals."""
    status = query.get("status") or "all_not_deleted"
    if status not in ("open", "won", "lost", "deleted", "all_not_deleted"):
        raise BadRequest("status must be one of open, won, lost, deleted, all_not_deleted")
    try:
        start = int(query.get("start") or 0)
    except ValueError:
        raise BadRequest("start must be an integer") from None
    if start < 0:
        raise BadRequest("start must not be negative")
    limit = _limit(query)
    matching = [deal for _, deal in sorted(company.deals.items())
                if (deal["is_deleted"] if status == "deleted"
                    else not deal["is_deleted"] and status in ("all_not_deleted", deal["status"]))]
    page = [_v1_deal(company, deal) for deal in matching[start:start + limit]]
    more = start + limit < len(matching)
    pagination = {"start": start, "limit": limit, "more_items_in_collection": more}
    if more:
        pagination["next_start"] = start + limit
    # API v1 answers an empty list with "data": null.
    return 200, {"success": True, "data": page or None, "additional_data": {"pagination": pagination}}


def list_activities(sandbox, company, query, body):
    """GET /api/v2/activities: activities that are not deleted."""
    return _list_v2(company.activities, query, lambda activity: not activity["is_deleted"])


def get_activity(sandbox, company, query, body, activity_id):
    """GET /api/v2/activities/{id}."""
    activity = company.activities.get(int(activity_id))
    return (200, {"success": True, "data": activity}) if activity else _not_found("Activity")


def delete_activity(sandbox, company, query, body, activity_id):
    """DELETE /api/v2/activities/{id}: mark the activity deleted and push `delete.activity` webhooks."""
    activity = company.activities.get(int(activity_id))
    if activity is None or activity["is_deleted"]:
        return _not_found("Activity")
    previous = dict(activity)
    activity.update(is_deleted=True, update_time=_rfc3339(_now()))
    sandbox.notify(company, "delete", "activity", activity["id"], previous)
    return 200, {"success": True, "data": {"id": activity["id"]}}


def list_stages(sandbox, company, query, body):
    """GET /api/v2/stages."""
    return _list_v2(company.stages, query)


def list_users(sandbox, company, query, body):
    """GET /api/v1/users: every user of the company, with name and email."""
    return 200, {"success": True, "data": list(company.users.values())}


def create_webhook(sandbox, company, query, body):
    """POST /api/v1/webhooks: subscribe a URL to event_action.event_object events (webhooks v2)."""
    for name in ("subscription_url", "event_action", "event_object"):
        if not body.get(name):
            raise BadRequest(f"{name} is required")
    url = body["subscription_url"]
    if urlsplit(url).scheme not in ("http", "https"):
        raise BadRequest("subscription_url must be an http(s) URL")
    if body["event_action"] not in WEBHOOK_ACTIONS:
        raise BadRequest(f"event_action must be one of {', '.join(sorted(WEBHOOK_ACTIONS))}")
    if body["event_object"] not in WEBHOOK_OBJECTS:
        raise BadRequest(f"event_object must be one of {', '.join(sorted(WEBHOOK_OBJECTS))}")
    if str(body.get("version") or "2.0") != "2.0":
        raise BadRequest("The sandbox delivers webhooks version 2.0 only")
    webhook = {
        "id": sandbox.next_webhook_id, "company_id": company.id, "owner_id": company.token_user_id,
        "user_id": int(body.get("user_id") or company.token_user_id),
        "event_action": body["event_action"], "event_object": body["event_object"],
        "subscription_url": url, "is_active": 1, "add_time": _v1_time(_rfc3339(_now())),
        "remove_time": None, "type": "general", "http_auth_user": body.get("http_auth_user"),
        "http_auth_password": body.get("http_auth_password"), "additional_data": [],
        "remove_reason": None, "last_delivery_time": None, "last_http_status": None,
        "admin_id": company.token_user_id, "version": "2.0",
    }
    sandbox.next_webhook_id += 1
    company.webhooks[webhook["id"]] = webhook
    return 201, {"status": "ok", "success": True, "data": webhook}


def list_webhooks(sandbox, company, query, body):
    """GET /api/v1/webhooks."""
    return 200, {"status": "ok", "success": True, "data": list(company.webhooks.values())}


def delete_webhook(sandbox, company, query, body, webhook_id):
    """DELETE /api/v1/webhooks/{id}."""
    if company.webhooks.pop(int(webhook_id), None) is None:
        return _not_found("Webhook")
    return 200, {"status": "ok", "success": True, "data": {"id": int(webhook_id)}}


ROUTES = [
    (method, re.compile(pattern), action)
    for method, pattern, action in [
        ("GET", r"/api/v2/deals", list_deals),
        ("GET", r"/api/v2/deals/(\d+)", get_deal),
        ("DELETE", r"/api/v2/deals/(\d+)", delete_deal),
        ("GET", r"/api/v2/activities", list_activities),
        ("GET", r"/api/v2/activities/(\d+)", get_activity),
        ("DELETE", r"/api/v2/activities/(\d+)", delete_activity),
        ("GET", r"/api/v2/stages", list_stages),
        ("GET", r"/api/v1/deals", list_deals_v1),
        ("GET", r"/api/v1/users", list_users),
        ("GET", r"/api/v1/webhooks", list_webhooks),
        ("POST", r"/api/v1/webhooks", create_webhook),
        ("DELETE", r"/api/v1/webhooks/(\d+)", delete_webhook),
    ]
]


class SandboxHandler(BaseHTTPRequestHandler):
    """Answers one request: rate limit and faults, then the token, then the route."""

    server_version = "PipedriveSandbox/1.0"
    # Headers and body go out as two writes; with Nagle on, the body waits for a delayed ACK.
    disable_nagle_algorithm = True

    def do_GET(self):
        """Handle a GET."""
        self._dispatch("GET")

    def do_POST(self):
        """Handle a POST."""
        self._dispatch("POST")

    def do_DELETE(self):
        """Handle a DELETE."""
        self._dispatch("DELETE")

    def log_message(self, format, *args):
        """Log through `logging` rather than straight to stderr."""
        log.info("%s %s", self.address_string(), format % args)

    def _dispatch(self, method):
        sandbox = self.server.sandbox
        url = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            body = self._read_body()
            if url.path.startswith("/sandbox/"):
                return self._control(sandbox, method, url.path, body)
            if self._refused(sandbox):
                return
            company = sandbox.company_for(self.headers.get("x-api-token") or query.get("api_token"))
            if company is None:
                return self._send(401, {"success": False, "error": "unauthorized access",
                                        "errorCode": 401, "error_info": ERROR_INFO})
            for route_method, pattern, action in ROUTES:
                match = pattern.fullmatch(url.path)
                if match and route_method == method:
                    with sandbox.lock:
                        status, payload = action(sandbox, company, query, body, *match.groups())
                        # Serialized under the lock: another request may change these records next.
                        data = json.dumps(payload).encode()
                    return self._send(status, data)
            self._send(404, {"success": False, "error": f"No route {method} {url.path}",
                             "error_info": ERROR_INFO, "data": None, "additional_data": None})
        except BadRequest as exc:
            self._send(400, {"success": False, "error": str(exc), "error_info": ERROR_INFO,
                             "data": None, "additional_data": None})

    def _read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}
        if self.headers.get_content_type() == "application/x-www-form-urlencoded":
            return {key: values[-1] for key, values in parse_qs(raw.decode()).items()}
        try:
            body = json.loads(raw)
        except ValueError:
            raise BadRequest("The request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise BadRequest("The request body must be a JSON object")
        return body

    def _refused(self, sandbox):
        """Answer 429 or an injected fault instead of the request, if due."""
        retry_after = sandbox.rate_limit.retry_after() if sandbox.rate_limit else None
        if retry_after is not None:
            limit = str(sandbox.rate_limit.per_second)
            self._send(429, {"success": False, "error": "Request over limit", "errorCode": 429,
                             "error_info": ERROR_INFO},
                       {"Retry-After": str(retry_after), "x-ratelimit-limit": limit,
                        "x-ratelimit-remaining": "0", "x-ratelimit-reset": str(retry_after)})
            return True
        fault = sandbox.take_fault()
        if fault is not None:
            status, fault_retry_after = fault
            headers = {"Retry-After": str(fault_retry_after)} if fault_retry_after is not None else {}
            self._send(status, {"success": False, "error": "Injected by the sandbox", "errorCode": status,
                                "error_info": ERROR_INFO}, headers)
            return True
        return False

    def _control(self, sandbox, method, path, body):
        if method == "POST" and path == "/sandbox/reset":
            sandbox.reset()
            return self._send(200, {"success": True})
        if method == "POST" and path == "/sandbox/faults":
            try:
                status, count = int(body.get("status", 503)), int(body.get("count", 1))
                retry_after = body.get("retry_after")
                retry_after = None if retry_after is None else int(retry_after)
            except (TypeError, ValueError):
                raise BadRequest("status, count and retry_after must be integers") from None
            if not 400 <= status <= 599 or count < 1:
                raise BadRequest("status must be 400-599 and count at least 1")
            with sandbox.lock:
                sandbox.faults.extend([(status, retry_after)] * count)
            return self._send(200, {"success": True})
        self._send(404, {"success": False, "error": f"No route {method} {path}"})

    def _send(self, status, payload, headers=None):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class SandboxServer(ThreadingHTTPServer):
    """The sandbox's HTTP server: `.port` is where it listens, `.sandbox` what it holds."""

    daemon_threads = True

    def __init__(self, address, sandbox):
        self.sandbox = sandbox
        super().__init__(address, SandboxHandler)

    def server_bind(self):
        """Bind without HTTPServer's FQDN lookup, which can stall for seconds without DNS."""
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    @property
    def port(self):
        """The port it listens on."""
        return self.server_address[1]

    @property
    def base_url(self):
        """The URL a connector's base_url setting points at."""
        return f"http://{self.server_address[0]}:{self.port}"

    def server_close(self):
        """Close the socket, then let webhook pushes already under way finish."""
        super().server_close()
        self.sandbox.wait_for_deliveries()


def make_server(port=0, host="127.0.0.1", rate_limit=None, today=None):
    """A seeded sandbox server bound to host:port (0 picks a free port), not yet serving."""
    return SandboxServer((host, port), Sandbox(today=today, rate_limit=rate_limit))


def main(argv=None):
    """Serve the sandbox until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.pipedrive",
                                     description="A Pipedrive-compatible sandbox holding the demo's data.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PIPEDRIVE_SANDBOX_PORT", "5055")))
    parser.add_argument("--rate-limit", type=int, metavar="N",
                        help="answer 429 with Retry-After beyond N requests a second")
    parser.add_argument("--today", type=date.fromisoformat, metavar="YYYY-MM-DD",
                        default=os.environ.get("PIPEDRIVE_SANDBOX_TODAY"),
                        help="the last day of the demo rows (default: today); the day the demo was seeded")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    server = make_server(port=args.port, host=args.host, rate_limit=args.rate_limit, today=args.today)
    log.info("Pipedrive sandbox at %s (API tokens: %s)", server.base_url, ", ".join(API_TOKENS))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
