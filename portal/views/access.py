"""Permission checks shared by every view: tenancy first, then role."""

from flask import abort
from flask_login import current_user

from portal.extensions import db
from portal.models import DataSource


def visible_data_source_or_404(data_source_id):
    """The data source if the current user may see it; a 404 otherwise, never a 403."""
    data_source = db.session.get(DataSource, data_source_id)
    if data_source is None or data_source.pending_deletion or not current_user.can_see(data_source.organization_id):
        abort(404)
    return data_source


def require_change_permission():
    """Viewers may look but not change anything."""
    if not current_user.can_change_data:
        abort(403)
