"""Deleting selected registrations after a server-rendered confirmation, and restoring them."""

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from portal.connectors import connector_info, source_type_of
from portal.jobs import JobAlreadyRunning, exclusive_job_for
from portal.jobs.deletion import start_delete_selection, start_restore
from portal.models import DeletionBatch
from portal.operations.deletion import (
    DeletionRefused,
    delete_registrations,
    live_batches,
    remove_suppression,
    restore_batch,
    summarize,
)
from portal.extensions import db
from portal.operations.source_check import still_at_source
from portal.queue import redis_connection
from portal.selection import SelectionStore
from portal.views.access import require_change_permission, visible_data_source_or_404
from portal.views.data_sources import table_context
from portal.views.errors import dialog_refusal, message_response
from portal.views.rendering import wants_fragment

bp = Blueprint("deletion", __name__, url_prefix="/data-sources/<int:data_source_id>")


@bp.before_request
@login_required
def require_login():
    """Deleting and restoring need a logged-in user."""


@bp.get("/delete/confirm")
def confirm(data_source_id):
    """The confirmation dialog: how many, which period and employees, what the connector will do."""
    data_source, selection = _selection(data_source_id)
    if selection.is_empty:
        return message_response("Nothing is selected: tick the registrations to delete first.", 422)
    operation_selection = selection.as_operation_selection()
    summary = summarize(operation_selection)
    warning = connector_warning(data_source)
    return render_template("deletion/_confirm.html", data_source=data_source, summary=summary,
                           stored=selection, warning=warning,
                           at_source=still_at_source(data_source, operation_selection) if warning else None)


@bp.post("/delete")
def delete(data_source_id):
    """Delete the confirmed selection: in the request when small, as a job when large."""
    data_source, stored = _selection(data_source_id)
    expected, reason, suppress = _confirmation_form()
    if current_user.is_support and not reason:
        return dialog_refusal("Support staff must give a reason for deleting registrations.")
    selection = stored.as_operation_selection()
    try:
        if expected > current_app.config["INLINE_DELETE_LIMIT"]:
            job = start_delete_selection(data_source, current_user, selection, expected, reason, suppress)
            _store(data_source).clear()
            return render_template("deletion/_started.html", data_source=data_source, job=job)
        batch = delete_registrations(selection, actor_id=current_user.id, expected_count=expected, reason=reason,
                                     suppress=suppress, restore_days=current_app.config["RESTORE_WINDOW_DAYS"])
    except (DeletionRefused, JobAlreadyRunning) as refused:
        return dialog_refusal(str(refused))
    _store(data_source).clear()
    db.session.refresh(data_source)
    return render_template("deletion/_deleted.html", batch=batch, **table_context(data_source, request.form))


@bp.get("/deleted")
def deleted(data_source_id):
    """The data source's deletions in their restore window, with Restore."""
    data_source = visible_data_source_or_404(data_source_id)
    return render_template("deletion/deleted.html", data_source=data_source, batches=live_batches(data_source.id))


@bp.post("/deleted/<int:batch_id>/restore")
def restore(data_source_id, batch_id):
    """Restore a deletion batch (Undo in the toast, or Restore on the Deleted page)."""
    data_source = visible_data_source_or_404(data_source_id)
    require_change_permission()
    batch = db.session.get(DeletionBatch, batch_id)
    if batch is None or batch.data_source_id != data_source.id:
        return message_response("That deletion is not in this data source.", 404)
    busy = exclusive_job_for(data_source.id)
    if busy:
        return message_response(f"{JobAlreadyRunning(busy)} Restore it once that has finished.", 422)
    try:
        if batch.kind == "all" or batch.count > current_app.config["INLINE_DELETE_LIMIT"]:
            job = start_restore(data_source, current_user, batch)
            flash(f"Restoring {batch.count:,} registrations in the background.", "info")
            return redirect(url_for("jobs.show", job_id=job.id))
        restored = restore_batch(batch.id, actor_id=current_user.id, reason=request.form.get("reason", ""))
    except (DeletionRefused, JobAlreadyRunning) as refused:
        return message_response(str(refused), 422)
    message = f"Restored {restored:,} registrations." if restored else "Those registrations were already restored."
    if wants_fragment() and request.form.get("from") == "toast":
        db.session.refresh(data_source)
        return render_template("deletion/_restored.html", message=message, **table_context(data_source, request.form))
    flash(message, "success")
    return redirect(url_for("deletion.deleted", data_source_id=data_source.id))


@bp.post("/suppressions/<int:suppression_id>/remove")
def unsuppress(data_source_id, suppression_id):
    """Let imports bring a suppressed external id back."""
    data_source = visible_data_source_or_404(data_source_id)
    require_change_permission()
    try:
        external_id = remove_suppression(data_source, suppression_id, actor_id=current_user.id)
    except DeletionRefused as refused:
        return message_response(str(refused), 404)
    flash(f"Imports will bring {external_id} back again.", "success")
    return redirect(url_for("data_sources.settings", data_source_id=data_source.id, _anchor="suppressed"))


def connector_warning(data_source):
    """What deleting here means at the source, from the connector's declared capability."""
    info = connector_info(data_source.connector)
    if not info.is_integration:
        return None
    capability = source_type_of(data_source.connector, data_source.source_type)
    return {"source": info.source_label, "automatic": capability.deletes_automatically,
            "mechanism": capability.deletion.value}


def _selection(data_source_id):
    data_source = visible_data_source_or_404(data_source_id)
    require_change_permission()
    return data_source, _store(data_source).load()


def _store(data_source):
    return SelectionStore(redis_connection(), current_user.id, data_source.id)


def _confirmation_form():
    """Expected count, reason and "keep them deleted" from the confirmation."""
    try:
        expected = int(request.form.get("expected_count", "0"))
    except ValueError:
        expected = 0
    return expected, request.form.get("reason", "").strip()[:1000], bool(request.form.get("suppress"))
