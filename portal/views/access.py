"""Permission checks shared by every view: tenancy first, then role."""

from flask import abort
from flask_login import current_user
from sqlalchemy import select

from portal.extensions import db
from portal.models import DataSource, Organization


def visible_data_source_or_404(data_source_id):
    """The data source if the current user may see it; a 404 otherwise, never a 403."""
    data_source = db.session.get(DataSource, data_source_id)
    if data_source is None or data_source.pending_deletion or not current_user.can_see(data_source.organization_id):
        abort(404)
    return data_source


def visible_or_404(model, key):
    """The row (an Employee, a Job: anything with an organization_id) if the current user may see
    its organization; a 404 otherwise, never a 403."""
    row = db.session.get(model, key)
    if row is None or not current_user.can_see(row.organization_id):
        abort(404)
    return row


def require_change_permission():
    """Viewers may look but not change anything."""
    if not current_user.can_change_data:
        abort(403)


def organization_shown(organization_id):
    """The user's own organization; support staff pick one (the first by name if they have not)."""
    if organization_id is None and current_user.is_support:
        organization_id = db.session.scalar(select(Organization.id).order_by(Organization.name).limit(1))
    organization_id = organization_id or current_user.organization_id
    organization = db.session.get(Organization, organization_id) if organization_id else None
    if organization is None or not current_user.can_see(organization.id):
        abort(404)
    return organization


def organizations_to_choose(organization):
    """Every organization by name for support staff's choice; just the user's own for everyone else."""
    if not current_user.is_support:
        return [organization]  # never None here: only support staff may look at every organization at once
    return db.session.scalars(select(Organization).order_by(Organization.name)).all()
