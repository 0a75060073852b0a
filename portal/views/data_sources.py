"""The start page, a data source's registrations, and its settings."""

from flask import Blueprint, current_app, render_template, request
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from portal.extensions import db
from portal.models import DataSource, Employee, Organization, Suppression
from portal.operations.api_tokens import live_tokens
from portal.operations.listing import EMPTY_PAGE, RegistrationFilter, count_matching, page_of_registrations
from portal.queue import redis_connection
from portal.selection import SelectionStore
from portal.views.access import visible_data_source_or_404
from portal.views.forms import RegistrationFilterForm
from portal.views.jobs import recent_jobs
from portal.views.rendering import render_page_or_fragment

bp = Blueprint("data_sources", __name__)


@bp.before_request
@login_required
def require_login():
    """Every page here needs a logged-in user."""


@bp.get("/")
def index():
    """The data sources the user may open (all of them for support staff)."""
    query = (select(DataSource).join(Organization).where(DataSource.pending_deletion.is_(False))
             .order_by(Organization.name, DataSource.name))
    if not current_user.is_support:
        query = query.where(DataSource.organization_id == current_user.organization_id)
    return render_template("data_sources/index.html", data_sources=db.session.scalars(query).all())


@bp.get("/data-sources/<int:data_source_id>")
def show(data_source_id):
    """A data source's registrations, filtered and paged by keyset, with the user's selection."""
    data_source = visible_data_source_or_404(data_source_id)
    try:
        context = table_context(data_source, request.args)
    except ValueError:
        return render_template("errors/message.html", message="That page link is not valid."), 400
    return render_page_or_fragment("data_sources/show.html", "data_sources/_registrations.html", **context)


@bp.get("/data-sources/<int:data_source_id>/settings")
def settings(data_source_id):
    """Name, connector settings (secrets never shown) and fields."""
    data_source = visible_data_source_or_404(data_source_id)
    return render_template("data_sources/settings.html", data_source=data_source,
                           suppressions=suppressed_external_ids(data_source.id),
                           jobs=recent_jobs(data_source_id=data_source.id, limit=10),
                           api_tokens=live_tokens(data_source.id) if data_source.is_manual else [])


def table_context(data_source, args):
    """Everything the registrations fragment shows: filter, page, selection (ValueError on a bad cursor)."""
    form, flt = filter_from_args(data_source, args)
    cursor = {key: args[key] for key in ("after", "before") if args.get(key)}
    if data_source.registration_count:
        page = page_of_registrations(flt, current_app.config["PAGE_SIZE"], **cursor)
    else:
        page = EMPTY_PAGE  # right after "delete all" the query would walk every hidden row to find none
    selection = None
    if current_user.can_change_data:
        store = SelectionStore(redis_connection(), current_user.id, data_source.id)
        selection = store.load()
        if selection.follow_filter(flt):
            store.end_all_matching()
    return dict(
        data_source=data_source, form=form, flt=flt, filter_args=filter_args(flt), cursor=cursor,
        page=page, selection=selection, **selection_figures(data_source, flt, page, selection),
    )


def selection_figures(data_source, flt, page, selection):
    """How many are selected, whether the page is all ticked, and N for "Select all N matching"."""
    if selection is None:
        return {"selected_count": 0, "page_fully_selected": False, "matching_count": None}
    page_ids = [r.id for r in page.rows]
    fully = bool(page_ids) and all(selection.is_selected(i) for i in page_ids)
    more_pages = bool(page.next_cursor or page.previous_cursor)
    matching = None
    if selection.is_all_matching or (fully and more_pages):
        matching = count_matching(flt) if flt.is_narrowed else data_source.registration_count
    if selection.is_all_matching:
        selected = max(0, matching - len(selection.excluded))
    else:
        selected = len(selection.ids)
    return {"selected_count": selected, "page_fully_selected": fully, "matching_count": matching}


def filter_from_args(data_source, args):
    """Parse the period/employee filter of the query string; invalid parts are ignored."""
    form = RegistrationFilterForm(formdata=MultiDict(args))
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


def suppressed_external_ids(data_source_id, limit=500):
    """The newest suppressions of a data source (imports skip these external ids)."""
    return db.session.scalars(
        select(Suppression).where(Suppression.data_source_id == data_source_id)
        .order_by(Suppression.created_at.desc(), Suppression.id.desc()).limit(limit)
    ).all()


def organization_employees(organization_id):
    """The organization's employees, active first, by name."""
    return db.session.scalars(
        select(Employee)
        .where(Employee.organization_id == organization_id)
        .order_by(Employee.active.desc(), Employee.name)
    ).all()
