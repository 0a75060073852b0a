"""Background jobs: the progress partial polled by htmx, the list, and retrying or canceling one."""

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from portal.extensions import db
from portal.jobs import JobAlreadyRunning, job_label
from portal.jobs.control import JobControlRefused, cancel, retry
from portal.models import ACTIVE_JOB_STATUSES, Job, JobStatus
from portal.views.access import (organization_shown, organizations_to_choose, require_change_permission,
                                 visible_or_404)
from portal.views.errors import dialog_refusal, message_response
from portal.views.rendering import render_page_or_fragment, wants_fragment

bp = Blueprint("jobs", __name__, url_prefix="/jobs")

LISTED = 100
CLOSE_DIALOG = '<div id="dialog" hx-swap-oob="true"></div>'
STATUS_FILTERS = {"failed": (JobStatus.FAILED,), "active": ACTIVE_JOB_STATUSES}
STARTED_BY = {"people": "People", "schedule": "The schedule (syncs)"}


@bp.before_request
@login_required
def require_login():
    """Every page here needs a logged-in user."""


@bp.get("")
def index():
    """The organization's most recent jobs, newest first; support staff choose the organization, or all."""
    everywhere = current_user.is_support and request.args.get("organization") == "all"
    organization = None if everywhere else organization_shown(request.args.get("organization", type=int))
    status = request.args.get("status") or None
    if status is not None and status not in STATUS_FILTERS:
        return message_response(f"There is no job status {status!r} to show; choose one from the list.", 400)
    started_by = request.args.get("started_by") or None
    if started_by is not None and started_by not in STARTED_BY:
        return message_response(f"There is no “started by” {started_by!r} to show; choose one from the list.", 400)
    jobs = recent_jobs(organization_id=None if everywhere else organization.id, status=status,
                       started_by=started_by)
    return render_page_or_fragment("jobs/index.html", "jobs/_all.html", jobs=jobs, organization=organization,
                                   organizations=organizations_to_choose(organization), status=status, listed=LISTED, allow_all=True,
                                   started_by=started_by, started_by_choices=STARTED_BY)


def recent_jobs(*, organization_id=None, data_source_id=None, kind=None, status=None, started_by=None, limit=LISTED):
    """The newest jobs, of an organization or a data source (None: every one), by kind, status and starter."""
    query = select(Job)
    if organization_id is not None:
        query = query.where(Job.organization_id == organization_id)
    if data_source_id is not None:
        query = query.where(Job.data_source_id == data_source_id)
    if kind is not None:
        query = query.where(Job.kind == kind)
    if status:
        query = query.where(Job.status.in_(STATUS_FILTERS[status]))
    if started_by == "people":
        query = query.where(Job.requested_by_id.is_not(None))
    elif started_by == "schedule":
        query = query.where(Job.requested_by_id.is_(None))
    return db.session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)).all()


@bp.get("/<job_id>")
def show(job_id):
    """The job's status and progress; the fragment stops polling once the job has ended."""
    return render_page_or_fragment("jobs/show.html", "jobs/_job.html", job=visible_or_404(Job, job_id))


@bp.get("/<job_id>/confirm")
def confirm(job_id):
    """The dialog that confirms a retry or a cancel, with a reason (required of support staff)."""
    job = visible_or_404(Job, job_id)
    require_change_permission()
    action = request.args.get("action")
    if action not in ("retry", "cancel"):
        return message_response("Choose Retry or Cancel on the job.", 400)
    return render_page_or_fragment("jobs/confirm.html", "jobs/_confirm.html", job=job, action=action)


@bp.post("/<job_id>/retry")
def retry_job(job_id):
    """Run a failed job again from where it stopped."""
    return _control(job_id, retry, "Retrying “{label}”: it is back on the queue.")


@bp.post("/<job_id>/cancel")
def cancel_job(job_id):
    """Cancel a queued job, or stop a running import at its next batch."""
    return _control(job_id, cancel, "“{label}” is canceled.", "“{label}” stops after the batch it is on.")


def _control(job_id, action, done_message, later_message=None):
    job = visible_or_404(Job, job_id)
    require_change_permission()
    reason = request.form.get("reason", "").strip()[:1000]
    if current_user.is_support and not reason:
        return dialog_refusal("Support staff must give a reason; it is kept in the audit log.")
    try:
        outcome = action(job, actor_id=current_user.id, reason=reason)
    except (JobControlRefused, JobAlreadyRunning) as refused:
        return dialog_refusal(str(refused))
    message = (later_message if outcome is False else done_message).format(label=job_label(job))
    if wants_fragment():
        db.session.refresh(job)
        return render_template("jobs/_job.html", job=job, message=message) + CLOSE_DIALOG
    flash(message, "success")
    return redirect(url_for("jobs.show", job_id=job.id))

