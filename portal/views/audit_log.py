"""The audit log: who did what to which data source, when, to how many rows, with what outcome."""

from flask import Blueprint, abort, current_app, request
from flask_login import login_required
from sqlalchemy import select

from portal.extensions import db
from portal.models import DataSource
from portal.operations.audit import ACTION_GROUPS, events_page, restorable_batches
from portal.views.access import organization_shown, organizations_to_choose, visible_data_source_or_404
from portal.views.errors import message_response
from portal.views.rendering import render_page_or_fragment

bp = Blueprint("audit_log", __name__, url_prefix="/audit-log")


@bp.before_request
@login_required
def require_login():
    """Every page here needs a logged-in user."""


@bp.get("")
def index():
    """The organization's events, newest first, optionally of one data source, page by page."""
    data_source_id = request.args.get("data_source", type=int)
    data_source = visible_data_source_or_404(data_source_id) if data_source_id else None
    organization = organization_shown(
        data_source.organization_id if data_source else request.args.get("organization", type=int))
    group = request.args.get("what") or None
    if group is not None and group not in ACTION_GROUPS:
        return message_response(f"There is no kind of event {group!r} to show; choose one from the list.", 400)
    before = request.args.get("before", type=int)
    if request.args.get("before") and before is None:
        abort(404)
    events, next_before = events_page(organization.id, data_source_id=data_source_id, group=group, before_id=before,
                                      limit=current_app.config["PAGE_SIZE"])
    data_sources = db.session.scalars(
        select(DataSource).where(DataSource.organization_id == organization.id,
                                 DataSource.pending_deletion.is_(False)).order_by(DataSource.name)).all()
    return render_page_or_fragment(
        "audit/index.html", "audit/_events.html", organization=organization,
        organizations=organizations_to_choose(organization), data_sources=data_sources, data_source=data_source,
        groups=ACTION_GROUPS, group=group,
        events=events, next_before=next_before, first_page=before is None, restorable=restorable_batches(events))
