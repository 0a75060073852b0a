"""Ticking registrations: htmx partials that keep the user's selection on the server."""

from flask import Blueprint, abort, render_template, request
from flask_login import current_user, login_required
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Registration
from portal.operations.listing import RegistrationFilter
from portal.queue import redis_connection
from portal.selection import SelectionStore
from portal.views.access import require_change_permission, visible_data_source_or_404
from portal.views.data_sources import table_context

bp = Blueprint("selection", __name__, url_prefix="/data-sources/<int:data_source_id>/selection")


@bp.before_request
@login_required
def require_login():
    """Selections belong to logged-in users who may delete."""


@bp.post("/tick")
def tick(data_source_id):
    """Tick or untick one registration; answers with the selection bar and the Delete button."""
    data_source, store = _open(data_source_id)
    registration_ids = _ids(request.form.get("registration_id", ""), data_source.id, expected=1)
    store.tick(registration_ids, checked=bool(request.form.get("checked")))
    context = table_context(data_source, request.form)
    return render_template("data_sources/_selection_update.html", **context)


@bp.post("/page")
def tick_page(data_source_id):
    """Tick or untick every registration on the page shown."""
    data_source, store = _open(data_source_id)
    page_ids = request.form.get("page_ids", "")
    ids = _ids(page_ids, data_source.id, expected=len([i for i in page_ids.split(",") if i]))
    store.tick(ids, checked=bool(request.form.get("checked")))
    return _table(data_source)


@bp.post("/all")
def select_all(data_source_id):
    """Select every registration matching the current filter, across pages."""
    data_source, store = _open(data_source_id)
    store.select_all_matching(table_context(data_source, request.form)["flt"])
    return _table(data_source)


@bp.post("/clear")
def clear(data_source_id):
    """Forget the selection."""
    data_source, store = _open(data_source_id)
    store.clear()
    return _table(data_source)


def _open(data_source_id):
    """The data source (checked) and the user's selection store for it."""
    data_source = visible_data_source_or_404(data_source_id)
    require_change_permission()
    return data_source, SelectionStore(redis_connection(), current_user.id, data_source.id)


def _ids(raw, data_source_id, expected):
    """Registration ids from the form, all of them of this data source; 400 otherwise."""
    try:
        ids = sorted({int(part) for part in raw.split(",") if part.strip()})
    except ValueError:
        abort(400, "Those are not registration ids.")
    found = db.session.scalar(
        select(func.count()).select_from(Registration)
        .where(*RegistrationFilter(data_source_id).clauses(), Registration.id.in_(ids))
    )
    if not ids or found != len(ids) or len(ids) != expected:
        abort(400, "Some of those registrations are not in this data source (or no longer exist). Reload the page.")
    return ids


def _table(data_source):
    """The registrations fragment for the page the request came from."""
    return render_template("data_sources/_registrations.html", **table_context(data_source, request.form))
