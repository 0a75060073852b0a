"""The audit log: written in the same transaction as the change it records, read newest first."""

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from portal.extensions import db
from portal.models import AuditEvent, DataSource, DeletionBatch


def record(action, data_source, actor_id, *, count=None, outcome="ok", reason="", details=None):
    """Add an audit event for an action on a data source (committed with the caller's work)."""
    event = AuditEvent(
        organization_id=data_source.organization_id,
        data_source_id=data_source.id,
        data_source_name=data_source.name,
        actor_id=actor_id,
        action=action,
        count=count,
        outcome=outcome,
        reason=reason or "",
        details=details or {},
    )
    db.session.add(event)
    return event


def record_employee_change(action, employee, actor_id, *, reason="", details=None):
    """Add an audit event for a change to an employee, which belongs to no data source."""
    event = AuditEvent(
        organization_id=employee.organization_id,
        data_source_id=None,
        actor_id=actor_id,
        action=action,
        reason=reason or "",
        details={"employee_id": employee.id, "employee_name": employee.name, **(details or {})},
    )
    db.session.add(event)
    return event


# What the audit log can be narrowed to: groups of actions, each with its label.
ACTION_GROUPS = {
    "deletions": ("Deletions and restores", (
        "delete_registrations", "delete_all_registrations", "restore_registrations", "purge_registrations",
        "delete_data_source", "reconcile", "remove_suppression")),
    "imports": ("Imports and additions", ("import", "manual_import", "add_registration")),
    "employees": ("Employee changes", ("deactivate_employee", "reactivate_employee")),
    "jobs": ("Jobs retried or canceled", ("retry_job", "cancel_job")),
    "tokens": ("API tokens", ("create_api_token", "revoke_api_token")),
}


def events_page(organization_id, *, data_source_id=None, group=None, before_id=None, limit=50):
    """A page of an organization's audit events, newest first, and the id the next page starts
    before (None on the last page). Keyset by id: no count, no offset, fast on any page."""
    query = select(AuditEvent).where(AuditEvent.organization_id == organization_id)
    if group is not None:
        query = query.where(AuditEvent.action.in_(ACTION_GROUPS[group][1]))
    if data_source_id is not None:
        query = query.where(AuditEvent.data_source_id == data_source_id)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    rows = db.session.scalars(
        query.order_by(AuditEvent.id.desc()).limit(limit + 1).options(selectinload(AuditEvent.actor))).all()
    return rows[:limit], (rows[limit - 1].id if len(rows) > limit else None)


def restorable_batches(events):
    """The deletions these events recorded that can still be restored, by batch id."""
    ids = {event.details.get("batch_id") for event in events if isinstance(event.details, dict)} - {None}
    if not ids:
        return {}
    batches = db.session.scalars(
        select(DeletionBatch).join(DataSource, DataSource.id == DeletionBatch.data_source_id)
        .where(DeletionBatch.id.in_(sorted(ids)), DeletionBatch.status == "deleted",
               DataSource.pending_deletion.is_(False)))
    return {batch.id: batch for batch in batches}
