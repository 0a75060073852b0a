"""Deletion events pushed by sources: Pipedrive's delete.deal webhook."""

import logging

from flask import Blueprint, abort, jsonify, request

from portal.connectors.pipedrive import deleted_deal_id
from portal.extensions import csrf, db
from portal.models import DataSource
from portal.operations.deletion import delete_at_source
from portal.operations.webhooks import credentials_match

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
log = logging.getLogger(__name__)


@bp.post("/pipedrive/<int:data_source_id>")
@csrf.exempt  # the source cannot hold a session token: it proves itself with basic auth instead
def pipedrive(data_source_id):
    """A Pipedrive event for one data source; deletions of deals are deleted here too."""
    data_source = db.session.get(DataSource, data_source_id)
    if data_source is None or data_source.connector != "pipedrive" or data_source.source_type != "deals":
        abort(404)
    auth = request.authorization
    if auth is None or not credentials_match(data_source, auth.username, auth.password):
        log.warning("Rejected a Pipedrive webhook for data source %s from %s: bad credentials",
                    data_source_id, request.remote_addr)
        return jsonify(error="Unauthorized"), 401, {"WWW-Authenticate": 'Basic realm="portal webhooks"'}
    deal_id = deleted_deal_id(request.get_json(silent=True))
    deleted = delete_at_source(data_source.id, [deal_id]) if deal_id else 0
    return jsonify(ok=True, deleted=deleted)
