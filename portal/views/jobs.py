"""The progress partial of a background job, polled by htmx while the job runs."""

from flask import Blueprint, abort
from flask_login import current_user, login_required

from portal.extensions import db
from portal.models import Job
from portal.views.rendering import render_page_or_fragment

bp = Blueprint("jobs", __name__, url_prefix="/jobs")


@bp.get("/<job_id>")
@login_required
def show(job_id):
    """The job's status and progress; the fragment stops polling once the job has ended."""
    job = db.session.get(Job, job_id)
    if job is None or not current_user.can_see(job.organization_id):
        abort(404)
    return render_page_or_fragment("jobs/show.html", "jobs/_job.html", job=job)
