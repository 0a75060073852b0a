"""Import more data: choose a period and import it again from the original source."""

from flask import Blueprint, redirect, render_template, url_for
from flask_login import current_user, login_required

from portal.connectors import source_type_of
from portal.connectors.base import Period
from portal.jobs import JobAlreadyRunning
from portal.jobs.importing import start_import
from portal.views.access import require_change_permission, visible_data_source_or_404
from portal.views.forms import ImportPeriodForm
from portal.views.jobs import recent_jobs
from portal.views.rendering import wants_fragment

BUSY = {"import": "An import", "delete_all": "Deleting all registrations", "delete_data_source": "Deleting the data source",
        "restore": "A restore", "delete_selected": "A deletion"}

bp = Blueprint("importing", __name__, url_prefix="/data-sources/<int:data_source_id>/import")


@bp.before_request
@login_required
def require_login():
    """Importing needs a logged-in team lead or support staff."""


@bp.route("", methods=["GET", "POST"])
def import_more(data_source_id):
    """The period form; a valid period starts the import job."""
    data_source = visible_data_source_or_404(data_source_id)
    require_change_permission()
    capability = source_type_of(data_source.connector, data_source.source_type)
    if not capability.imports_period:
        return render_template("errors/message.html", message="A manual data source has no source to import from."), 404
    form = ImportPeriodForm(max_span_days=capability.max_span_days)
    error, job = None, None
    if form.validate_on_submit():
        try:
            job = start_import(data_source, current_user, Period(form.date_from.data, form.date_to.data),
                               confirm_removals=form.confirm_removals.data)
        except JobAlreadyRunning as busy:
            job = busy.job  # its progress is shown below the message
            error = f"{BUSY.get(job.kind, 'Another job')} is already running for this data source. " \
                    "Start the import once it has finished."
        else:
            if not wants_fragment():
                return redirect(url_for("jobs.show", job_id=job.id))
    template = "importing/_form.html" if wants_fragment() else "importing/import.html"
    status = 422 if form.errors or error else 200
    return render_template(template, data_source=data_source, form=form, error=error, job=job,
                           jobs=recent_jobs(data_source_id=data_source.id, kind="import", limit=5)), status

