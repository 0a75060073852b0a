"""The start page, a data source's registrations, and its settings."""

from flask import Blueprint, current_app, render_template, request
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from portal.extensions import db
from portal.models import DataSource, Employee, Organization
from portal.operations.listing import RegistrationFilter, page_of_registrations
from portal.views.access import visible_data_source_or_404
from portal.views.forms import RegistrationFilterForm
from portal.views.rendering import render_page_or_fragment

bp = Blueprint("data_sources", __name__)


@bp.before_request
@login_required
def require_login():
    """Every page here needs a logged-in user."""


@bp.get("/")
def index():
    """The data sources the user may open (all of them for support staff)."""
    query = select(DataSource).join(Organization).order_by(Organization.name, DataSource.name)
    if not current_user.is_support:
        query = query.where(DataSource.organization_id == current_user.organization_id)
    return render_template("data_sources/index.html", data_sources=db.session.scalars(query).all())


@bp.get("/data-sources/<int:data_source_id>")
def show(data_source_id):
    """A data source's registrations, filtered and paged by keyset."""
    data_source = visible_data_source_or_404(data_source_id)
    form, flt = filter_from_request(data_source)
    try:
        page = page_of_registrations(
            flt,
            current_app.config["PAGE_SIZE"],
            after=request.args.get("after"),
            before=request.args.get("before"),
        )
    except ValueError:
        return render_template("errors/message.html", message="That page link is not valid."), 400
    return render_page_or_fragment(
        "data_sources/show.html",
        "data_sources/_registrations.html",
        data_source=data_source,
        form=form,
        flt=flt,
        filter_args=filter_args(flt),
        page=page,
    )


@bp.get("/data-sources/<int:data_source_id>/settings")
def settings(data_source_id):
    """Name, connector settings (secrets never shown) and fields."""
    data_source = visible_data_source_or_404(data_source_id)
    return render_template("data_sources/settings.html", data_source=data_source)


def filter_from_request(data_source):
    """Parse the period/employee filter of the query string; invalid parts are ignored."""
    form = RegistrationFilterForm(formdata=MultiDict(request.args))
    form.set_employees(organization_employees(data_source.organization_id))
    valid = form.validate()
    flt = RegistrationFilter(
        data_source_id=data_source.id,
        date_from=form.date_from.data if valid else None,
        date_to=form.date_to.data if valid else None,
        employee_id=(form.employee.data or None) if valid else None,
    )
    return form, flt


def filter_args(flt):
    """The query-string form of a filter, for links that keep it."""
    args = {"date_from": flt.date_from, "date_to": flt.date_to, "employee": flt.employee_id}
    return {key: value for key, value in args.items() if value}


def organization_employees(organization_id):
    """The organization's employees, active first, by name."""
    return db.session.scalars(
        select(Employee)
        .where(Employee.organization_id == organization_id)
        .order_by(Employee.active.desc(), Employee.name)
    ).all()
