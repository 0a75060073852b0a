"""Pipedrive: deals and activities over Pipedrive's public REST API (no Flask here).

Settings: `base_url` (the company's `https://<company>.pipedrive.com`, or the sandbox's URL);
secrets: `api_token`, sent in the `x-api-token` header so it never appears in a URL.
Deals and activities come from API v2, which carries only `owner_id`: the employee's email and
name are the owner's, from `GET /api/v1/users`; a deal's stage name is from `GET /api/v2/stages`.
Deleted deals come from `GET /api/v1/deals?status=deleted` and from `delete.deal` webhooks.
"""

import time
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime

import httpx

from portal.connectors.base import ConnectorConfig, ConnectorError, Period, SourceRecord

SOURCE_TYPES = ("deals", "activities")


class PipedriveReader:
    """Reads a period of deals or activities from Pipedrive, retrying what is worth retrying."""

    def __init__(self, *, page_size=500, max_attempts=5, retry_delay=1.0, max_retry_delay=60.0,
                 timeout=30.0, sleep=time.sleep):
        self.page_size = page_size
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay  # the first backoff; it doubles on each further attempt
        self.max_retry_delay = max_retry_delay  # caps Retry-After too, so a worker is never parked for long
        self.timeout = timeout
        self.sleep = sleep

    def read(self, config: ConnectorConfig, period: Period):
        """Yield the period's deals or activities as SourceRecords, one API page at a time."""
        source_type = _source_type(config)
        with _PipedriveApi(config, self) as api:
            owners = api.owners()
            if source_type == "deals":
                stage_names = api.stage_names()
                # A deal's day (won, closed or added) is never after its update_time, so
                # updated_since is a safe lower bound. No updated_until: a deal won in the
                # period may have been edited after it.
                params = {"updated_since": _start_of_day(period.start)}

                def to_record(deal):
                    return _deal_record(deal, owners, stage_names)
            else:
                # An activity is often planned days ahead and never touched again, so its
                # update_time can fall before or after its due date: no bound is safe.
                params = {}

                def to_record(activity):
                    return _activity_record(activity, owners)

            for page in api.cursor_pages(f"/api/v2/{source_type}", params):
                records = [record for record in map(to_record, page)
                           if period.start <= record.occurred_on <= period.end]
                if records:
                    yield records

    def count_existing(self, config: ConnectorConfig, external_ids):
        """How many of these deals or activities Pipedrive still has (not deleted), 100 ids a request."""
        ids = sorted({int(e) for e in external_ids if str(e).isdigit()})
        if not ids:
            return 0
        with _PipedriveApi(config, self) as api:
            return sum(len(page) for start in range(0, len(ids), 100)
                       for page in api.cursor_pages(f"/api/v2/{_source_type(config)}",
                                                    {"ids": ",".join(map(str, ids[start:start + 100]))}))

    def deleted_ids(self, config: ConnectorConfig, period: Period):
        """Yield ids of the period's deals that Pipedrive lists as deleted; nothing for activities."""
        if _source_type(config) != "deals":
            return  # Pipedrive lists no deleted activities
        with _PipedriveApi(config, self) as api:
            for page in api.offset_pages("/api/v1/deals", {"status": "deleted"}):
                ids = [str(deal["id"]) for deal in page
                       if period.start <= _deal_occurred_on(deal) <= period.end]
                if ids:
                    yield ids


def register_deletion_webhook(config, subscription_url, user, password, reader=None):
    """Subscribe subscription_url (with HTTP basic auth) to `delete.deal` events; returns the webhook id."""
    if _source_type(config) != "deals":
        raise ConnectorError("Pipedrive deletion webhooks are used for deals only.")
    with _PipedriveApi(config, reader or PipedriveReader()) as api:
        body = api.request("POST", "/api/v1/webhooks", json={
            "subscription_url": subscription_url, "event_action": "delete", "event_object": "deal",
            "http_auth_user": user, "http_auth_password": password, "version": "2.0",
        })
    return body["data"]["id"]


def remove_deletion_webhook(config, webhook_id, reader=None):
    """Remove a webhook registered earlier; False if Pipedrive no longer has it."""
    with _PipedriveApi(config, reader or PipedriveReader()) as api:
        return api.request("DELETE", f"/api/v1/webhooks/{int(webhook_id)}", missing_ok=True) is not None


def deleted_deal_id(payload):
    """The id of the deal a Pipedrive webhook payload (v2 or v1) reports deleted, else None."""
    meta = payload.get("meta") if isinstance(payload, dict) else None
    if not isinstance(meta, dict):
        return None
    if meta.get("entity") == "deal" and meta.get("action") == "delete":
        deal_id = meta.get("entity_id")
    elif meta.get("object") == "deal" and meta.get("action") == "deleted":
        deal_id = meta.get("id")  # in webhooks v1, meta.id is the deal's id
    else:
        return None
    return str(deal_id) if deal_id not in (None, "") else None


def _source_type(config):
    if config.source_type not in SOURCE_TYPES:
        raise ConnectorError(f"Pipedrive has no data source type {config.source_type!r}.")
    return config.source_type


def _start_of_day(day):
    return datetime.combine(day, datetime.min.time(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _day_of(stamp):
    """The day of a Pipedrive UTC time, in v2 ("2025-03-01T10:15:00Z") or v1 ("2025-03-01 10:15:00") form."""
    return date.fromisoformat(stamp[:10])


def _deal_occurred_on(deal):
    """A deal counts on the day it was won or closed, or, while open, the day it was added."""
    return _day_of(deal.get("won_time") or deal.get("close_time") or deal["add_time"])


def _deal_record(deal, owners, stage_names):
    owner = owners.get(deal.get("owner_id"), {})
    return SourceRecord(
        external_id=str(deal["id"]),
        occurred_on=_deal_occurred_on(deal),
        values={"title": deal.get("title"), "value": deal.get("value"), "currency": deal.get("currency"),
                "stage": stage_names.get(deal.get("stage_id")), "status": deal.get("status")},
        employee_email=owner.get("email"),
        employee_name=owner.get("name"),
    )


def _activity_record(activity, owners):
    owner = owners.get(activity.get("owner_id"), {})
    return SourceRecord(
        external_id=str(activity["id"]),
        occurred_on=_day_of(activity.get("due_date") or activity["add_time"]),
        values={"subject": activity.get("subject"), "type": activity.get("type"),
                "duration_minutes": _minutes(activity.get("duration")), "done": bool(activity.get("done"))},
        employee_email=owner.get("email"),
        employee_name=owner.get("name"),
    )


def _minutes(duration):
    """Pipedrive's "HH:MM" duration in minutes (None when the activity has none)."""
    if not duration:
        return None
    hours, _, minutes = str(duration).partition(":")
    try:
        return int(hours) * 60 + int(minutes or 0)
    except ValueError:
        return None


def _retry_after_seconds(header):
    """Retry-After as seconds (it may be a number or an HTTP date), or None."""
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(header) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


class _PipedriveApi:
    """One connection to one Pipedrive company: requests with retries, pages, lookups."""

    def __init__(self, config, reader):
        self.base_url = str(config.settings.get("base_url") or "").rstrip("/")
        self._token = str(config.secrets.get("api_token") or "")
        self._reader = reader
        if not self._token:
            raise ConnectorError("Pipedrive needs an API token: add it in the data source's settings.")
        try:
            scheme = httpx.URL(self.base_url).scheme
        except httpx.InvalidURL:
            scheme = ""
        if scheme not in ("http", "https"):
            raise ConnectorError(self._scrub(
                f"Pipedrive's base URL {self.base_url!r} is not an http(s) URL "
                "(e.g. https://yourcompany.pipedrive.com)."))
        self._client = httpx.Client(base_url=self.base_url, timeout=reader.timeout,
                                    headers={"x-api-token": self._token, "Accept": "application/json"})

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._client.close()

    def request(self, method, path, *, params=None, json=None, missing_ok=False):
        """The JSON body of a successful answer; retries 429, 5xx and network failures."""
        # A POST that failed with 5xx or mid-way may have been applied: only a 429 or a refused
        # connection (never applied) is safe to send again.
        idempotent = method in ("GET", "DELETE")
        attempts = self._reader.max_attempts
        for attempt in range(1, attempts + 1):
            retry_after = None
            try:
                response = self._client.request(method, path, params=params, json=json)
            except httpx.TransportError as exc:
                problem = f"Could not reach Pipedrive at {self.base_url} ({type(exc).__name__}: {exc})"
                if not (idempotent or isinstance(exc, httpx.ConnectError)):
                    raise ConnectorError(self._scrub(problem + ".")) from None
            else:
                if response.status_code == 429:
                    problem = "Pipedrive's rate limit is still exceeded (HTTP 429)"
                    retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
                elif response.status_code >= 500 and idempotent:
                    problem = f"Pipedrive answered HTTP {response.status_code}"
                else:
                    return self._decode(response, path, missing_ok)
            if attempt == attempts:
                raise ConnectorError(self._scrub(f"Gave up after {attempts} attempts. {problem}."))
            backoff = self._reader.retry_delay * 2 ** (attempt - 1)
            self._reader.sleep(min(backoff if retry_after is None else retry_after,
                                   self._reader.max_retry_delay))

    def _decode(self, response, path, missing_ok):
        status = response.status_code
        if status == 401:
            raise ConnectorError("Pipedrive refused the API token (HTTP 401): check it in the data source's settings.")
        if status == 403:
            raise ConnectorError("Pipedrive denied access (HTTP 403): the API token's user lacks permission.")
        if status == 404 and missing_ok:
            return None
        try:
            body = response.json()
        except ValueError:
            raise ConnectorError(self._scrub(
                f"Pipedrive at {self.base_url} answered HTTP {status} to {path} without JSON: "
                "check the base URL.")) from None
        if not isinstance(body, dict) or status >= 400 or not body.get("success"):
            error = body.get("error") if isinstance(body, dict) else None
            raise ConnectorError(self._scrub(
                f"Pipedrive answered HTTP {status} to {path}: {error or 'no success'}."))
        return body

    def _scrub(self, message):
        """The message with the API token blanked, wherever it crept in (a pasted URL, an echo)."""
        return message.replace(self._token, "[API token]") if self._token else message

    def cursor_pages(self, path, params):
        """Yield the `data` of each page of an API v2 list, following next_cursor."""
        cursor = None
        while True:
            page_params = {**params, "limit": self._reader.page_size}
            if cursor:
                page_params["cursor"] = cursor
            body = self.request("GET", path, params=page_params)
            yield body.get("data") or []
            cursor = (body.get("additional_data") or {}).get("next_cursor")
            if not cursor:
                return

    def offset_pages(self, path, params):
        """Yield the `data` of each page of an API v1 list, following start/limit pagination."""
        start = 0
        while True:
            body = self.request("GET", path, params={**params, "start": start, "limit": self._reader.page_size})
            yield body.get("data") or []  # v1 answers an empty page with null
            pagination = (body.get("additional_data") or {}).get("pagination") or {}
            next_start = pagination.get("next_start", start + self._reader.page_size)
            if not pagination.get("more_items_in_collection") or next_start <= start:
                return
            start = next_start

    def owners(self):
        """The company's users by id: whom deals and activities belong to, with name and email."""
        users = self.request("GET", "/api/v1/users").get("data") or []
        return {user["id"]: {"email": user.get("email"), "name": user.get("name")} for user in users}

    def stage_names(self):
        """Stage names by stage id."""
        return {stage["id"]: stage.get("name")
                for page in self.cursor_pages("/api/v2/stages", {}) for stage in page}
