"""The Employees page: who the registrations are about, deactivated and reactivated, never deleted."""

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from portal.models import Employee
from portal.operations.employees import deactivate_employee, employees_with_counts, reactivate_employee
from portal.views.access import (organization_shown, organizations_to_choose, require_change_permission,
                                 visible_or_404)
from portal.views.rendering import render_page_or_fragment, wants_fragment

bp = Blueprint("employees", __name__, url_prefix="/employees")


@bp.before_request
@login_required
def require_login():
    """Every page here needs a logged-in user."""


@bp.get("")
def index():
    """The organization's employees with status and registration counts (support staff choose one)."""
    organization = organization_shown(request.args.get("organization", type=int))
    organizations = organizations_to_choose(organization)
    return render_page_or_fragment("employees/index.html", "employees/_list.html", organization=organization,
                                   organizations=organizations, rows=employees_with_counts(organization.id))


@bp.post("/<int:employee_id>/deactivate")
def deactivate(employee_id):
    """Deactivate an employee; their registrations stay and still count."""
    employee = visible_or_404(Employee, employee_id)
    require_change_permission()
    deactivate_employee(employee, actor_id=current_user.id)
    return changed(employee, f"{employee.name} is deactivated. Their registrations stay and still count.")


@bp.post("/<int:employee_id>/reactivate")
def reactivate(employee_id):
    """Make a deactivated employee active again."""
    employee = visible_or_404(Employee, employee_id)
    require_change_permission()
    reactivate_employee(employee, actor_id=current_user.id)
    return changed(employee, f"{employee.name} is active again.")


def changed(employee, message):
    """The employee's new row for htmx; otherwise back to the list with a message."""
    if wants_fragment():
        row = employees_with_counts(employee.organization_id, [employee.id])[0]
        return render_template("employees/_row.html", row=row)
    flash(message, "success")
    organization = employee.organization_id if current_user.is_support else None
    return redirect(url_for("employees.index", organization=organization))

