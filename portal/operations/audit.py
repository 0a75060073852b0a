"""Writing the audit log, in the same transaction as the change it records."""

from portal.extensions import db
from portal.models import AuditEvent


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
