"""Deleting all registrations of a data source, or the data source itself, from its settings."""

from flask import Blueprint, render_template, request, url_for
from flask_login import current_user, login_required

from portal.jobs import JobAlreadyRunning
from portal.jobs.delete_all import start_delete_all, start_delete_source
from portal.views.access import require_change_permission, visible_data_source_or_404
from portal.views.deletion import connector_warning
from portal.operations.listing import RegistrationFilter, period_of
from portal.views.errors import dialog_refusal

bp = Blueprint("delete_all", __name__, url_prefix="/data-sources/<int:data_source_id>")

WHAT = {"registrations": "Delete all registrations", "source": "Delete data source"}


@bp.before_request
@login_required
def require_login():
    """Only logged-in team leads and support staff get here."""


@bp.get("/delete-all/confirm")
def confirm_delete_all(data_source_id):
    """The typed-name confirmation for deleting every registration."""
    return _confirm(data_source_id, "registrations")


@bp.get("/delete-source/confirm")
def confirm_delete_source(data_source_id):
    """The typed-name confirmation for deleting the data source itself."""
    return _confirm(data_source_id, "source")


@bp.post("/delete-all")
def delete_all(data_source_id):
    """Start deleting every registration."""
    return _start(data_source_id, "registrations")


@bp.post("/delete-source")
def delete_source(data_source_id):
    """Start deleting the data source."""
    return _start(data_source_id, "source")


def _confirm(data_source_id, what):
    data_source = _changeable(data_source_id)
    return render_template("delete_all/_confirm.html", data_source=data_source, what=what, title=WHAT[what],
                           warning=connector_warning(data_source) if what == "registrations" else None,
                           period=_period(data_source))


def _start(data_source_id, what):
    """Check the typed name and the reason, then start the job."""
    data_source = _changeable(data_source_id)
    reason = request.form.get("reason", "").strip()[:1000]
    if request.form.get("confirm_name", "").strip() != data_source.name:
        return dialog_refusal("The name you typed does not match the data source's name. Nothing was deleted.")
    if current_user.is_support and not reason:
        return dialog_refusal("Support staff must give a reason for deleting.")
    try:
        if what == "source":
            job = start_delete_source(data_source, current_user, reason)
            return "", 204, {"HX-Redirect": url_for("jobs.show", job_id=job.id)}
        job = start_delete_all(data_source, current_user, reason, suppress=bool(request.form.get("suppress")))
    except JobAlreadyRunning as busy:
        return dialog_refusal(f"{busy} Wait until it has finished.")
    return render_template("delete_all/_started.html", job=job)


def _changeable(data_source_id):
    data_source = visible_data_source_or_404(data_source_id)
    require_change_permission()
    return data_source


def _period(data_source):
    """First and last day of the data source's registrations."""
    return period_of(RegistrationFilter(data_source.id))
