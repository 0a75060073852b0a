"""Retrying a failed job and canceling one that is queued or running (support staff and team leads).

A retry puts the same Job row back on the queue under its id: it reruns from the cursor
its last committed chunk left, as a requeued job does, so it ends in the same state as a
run that never failed. A queued job is canceled before it starts. A running import stops
at its next checkpoint (between two batches): what it committed stays, and importing the
period again finishes it. Other kinds run as one short transaction or, for deleting a
data source, cannot stop half-way, so they are only canceled while queued.
"""

from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job as RQJob
from rq.registry import FailedJobRegistry
from sqlalchemy.exc import IntegrityError

from portal.extensions import db
from portal.jobs import (EXCLUSIVE_KINDS, JobAlreadyRunning, exclusive_job_for, finish, job_label, lock_key_for,
                         put_on_queue)
from portal.jobs.registry import JOB_FUNCTIONS
from portal.models import DataSource, JobStatus, utcnow
from portal.operations import audit
from portal.queue import get_queue, redis_connection

STOPPABLE_WHILE_RUNNING = frozenset({"import"})
NEVER_CANCELED = frozenset({"delete_data_source"})


class JobControlRefused(Exception):
    """The job cannot be retried or canceled now; the message says why."""


def retry(job, *, actor_id, reason=""):
    """Put a failed job back on the queue under its id."""
    if job.status != JobStatus.FAILED:
        raise JobControlRefused(f"Only a failed job can be retried; “{job_label(job)}” is {job.status}.")
    data_source = _data_source_of(job)
    if job.kind in EXCLUSIVE_KINDS:
        job.lock_key = lock_key_for(data_source.id)
    job.status, job.error, job.attempts, job.finished_at = JobStatus.QUEUED, None, 0, None
    job.cancel_requested_at = None
    audit.record("retry_job", data_source, actor_id, reason=reason, details={"job_id": job.id, "kind": job.kind})
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise JobAlreadyRunning(exclusive_job_for(data_source.id)) from None
    _forget_failure(job.id)
    put_on_queue(JOB_FUNCTIONS[job.kind], job.id)
    return job


def cancel(job, *, actor_id, reason=""):
    """Cancel a queued job now, or ask a running import to stop at its next checkpoint.

    Returns True if the job is canceled already, False if it stops at its next checkpoint.
    """
    if not job.is_active:
        raise JobControlRefused(f"“{job_label(job)}” is {job.status}; only a queued or running job can be canceled.")
    if job.kind in NEVER_CANCELED:
        raise JobControlRefused(f"“{job_label(job)}” cannot be canceled: the data source is already hidden and "
                                "its registrations are going; it finishes, or is retried if it fails.")
    data_source = _data_source_of(job)
    audit.record("cancel_job", data_source, actor_id, reason=reason, details={"job_id": job.id, "kind": job.kind})
    if job.status == JobStatus.QUEUED and _cancel_on_queue(job.id):
        finish(job, JobStatus.CANCELED, error="Canceled before it started.")
        return True
    if job.kind not in STOPPABLE_WHILE_RUNNING:
        db.session.rollback()
        raise JobControlRefused(f"“{job_label(job)}” is running and finishes in one step; it cannot be stopped now.")
    job.cancel_requested_at = utcnow()
    db.session.commit()
    return False


def _data_source_of(job):
    data_source = db.session.get(DataSource, job.data_source_id) if job.data_source_id else None
    if data_source is None or data_source.pending_deletion:
        raise JobControlRefused("The job's data source no longer exists.")
    return data_source


def _cancel_on_queue(job_id):
    """Take a job off the queue before a worker starts it; False if a worker has it already."""
    try:
        rq_job = RQJob.fetch(job_id, connection=redis_connection())
    except NoSuchJobError:
        return True  # nothing will run it
    if rq_job.get_status(refresh=True) not in ("queued", "scheduled", "deferred"):
        return False
    try:
        rq_job.cancel()
    except InvalidJobOperation:
        return False
    return True


def _forget_failure(job_id):
    """Take the failed execution out of RQ's failed registry before the job runs again."""
    try:
        rq_job = RQJob.fetch(job_id, connection=redis_connection())
    except NoSuchJobError:
        return
    FailedJobRegistry(queue=get_queue()).remove(rq_job)
