"""Employees: listed with how many registrations record their work, deactivated and reactivated.

Never deleted: their registrations keep counting for the periods they worked, so deactivating
changes the employee alone and leaves every registration where it is.
"""

from dataclasses import dataclass

from sqlalchemy import func, select, update

from portal.extensions import db
from portal.models import DataSource, Employee, Registration, utcnow
from portal.operations import audit
from portal.operations.listing import is_live


@dataclass(frozen=True)
class EmployeeCount:
    """An employee and how many registrations of visible data sources are theirs."""

    employee: Employee
    registrations: int


def employees_with_counts(organization_id, employee_ids=None):
    """The organization's employees by name, each with its registration count, in one grouped query."""
    counted = (
        select(Registration.employee_id, func.count().label("registrations"))
        .join(DataSource, DataSource.id == Registration.data_source_id)
        .where(DataSource.organization_id == organization_id, DataSource.pending_deletion.is_(False),
               is_live())
        .group_by(Registration.employee_id)
    )
    employees = select(Employee).where(Employee.organization_id == organization_id)
    if employee_ids is not None:
        counted = counted.where(Registration.employee_id.in_(employee_ids))
        employees = employees.where(Employee.id.in_(employee_ids))
    counted = counted.subquery()
    rows = db.session.execute(
        employees.add_columns(func.coalesce(counted.c.registrations, 0))
        .outerjoin(counted, counted.c.employee_id == Employee.id)
        .order_by(Employee.name, Employee.id)
    ).all()
    return [EmployeeCount(employee, count) for employee, count in rows]


def deactivate_employee(employee, *, actor_id, reason=""):
    """Mark the employee deactivated from now; their registrations stay. False if already deactivated."""
    return _set_active(employee, False, "deactivate_employee", actor_id, reason)


def reactivate_employee(employee, *, actor_id, reason=""):
    """Make a deactivated employee active again. False if already active."""
    return _set_active(employee, True, "reactivate_employee", actor_id, reason)


def _set_active(employee, active, action, actor_id, reason):
    # A conditional UPDATE, so two people pressing the button at once make one change and one audit event.
    changed = db.session.execute(
        update(Employee).where(Employee.id == employee.id, Employee.active.is_(not active))
        .values(active=active, deactivated_at=None if active else utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed:
        audit.record_employee_change(action, employee, actor_id, reason=reason)
    db.session.commit()
    db.session.refresh(employee)
    return bool(changed)
