"""The JSON API of manual data sources: programs send registrations with the data source's API token.

POST /api/v1/data-sources/<id>/registrations, `Authorization: Bearer <token>`, a JSON body
{"registrations": [...], "mode": "none_if_errors" (the default) or "valid_rows"}. The token,
not a session, proves who sends, so there is no CSRF token and cookies count for nothing.
"""

import logging

from flask import Blueprint, jsonify, request
from werkzeug.exceptions import HTTPException

from portal.extensions import csrf, db, limiter
from portal.jobs import JobAlreadyRunning, exclusive_job_for
from portal.operations.api_tokens import data_source_for
from portal.operations.importing import ImportRefused
from portal.operations.manual_entry import IMPORT_MODES, NONE_IF_ERRORS, ImportFailed, import_rows, records_from_json

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)
log = logging.getLogger(__name__)

MAX_REGISTRATIONS = 5000
MAX_BODY_BYTES = 10 * 1024 * 1024


@bp.url_value_preprocessor
def limit_body_size(endpoint, values):
    """Refuse a body over the limit before reading it (413, as JSON below)."""
    request.max_content_length = MAX_BODY_BYTES


@bp.errorhandler(HTTPException)
def http_error(error):
    """Errors as JSON here, never the portal's HTML pages."""
    return jsonify(error=error.description), error.code


@bp.post("/data-sources/<int:data_source_id>/registrations")
@limiter.limit("120 per minute", error_message="Too many requests: at most 120 a minute. Wait and send again.")
def add_registrations(data_source_id):
    """Add or update registrations of a manual data source, all or nothing unless the mode says valid rows."""
    token = _bearer_token()
    found = data_source_for(token, data_source_id)
    if found is None:
        log.warning("Rejected an API call for data source %s from %s: no valid token", data_source_id,
                    request.remote_addr)
        return _refused(401, "Send this data source's API token as `Authorization: Bearer <token>` "
                             "(create one in the data source's settings).",
                        {"WWW-Authenticate": 'Bearer realm="portal api"'})
    data_source, token_row = found
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("registrations"), list):
        return _refused(400, 'The body must be a JSON object with a list "registrations".')
    mode = body.get("mode", NONE_IF_ERRORS)
    if mode not in IMPORT_MODES:
        return _refused(400, f'"mode" must be one of {", ".join(IMPORT_MODES)}.')
    items = body["registrations"]
    if not items:
        return _refused(400, 'The list "registrations" is empty.')
    if len(items) > MAX_REGISTRATIONS:
        return _refused(413, f"Send at most {MAX_REGISTRATIONS:,} registrations per request; this one has "
                             f"{len(items):,}.")
    busy = exclusive_job_for(data_source.id)
    if busy:
        return _refused(409, f"{JobAlreadyRunning(busy)} Send again once it has finished.")
    records, problems = records_from_json(data_source, items)
    try:
        report = import_rows(data_source, records, None, mode, problems=len(problems),
                             file_name=f"JSON API (token {token_row.prefix}…)")
    except ImportRefused:
        db.session.commit()  # the token's last use
        return jsonify(imported=False, problems=problems,
                       error=f"Nothing was imported: {len(problems):,} of the registrations are not right. Fix "
                             'them and send again, or send "mode": "valid_rows" to import only the others.'), 422
    except ImportFailed as failed:
        return _refused(503, str(failed))
    return jsonify(imported=True, new=report.new, updated=report.updated, unchanged=report.unchanged,
                   skipped_suppressed=report.skipped_suppressed, employees_created=report.employees_created,
                   problems=problems)


def _bearer_token():
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _refused(status, message, headers=None):
    """A clear message, and nothing written."""
    db.session.rollback()
    return jsonify(error=message), status, headers or {}
