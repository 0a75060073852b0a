"""Finding jobs that no worker is running any more (a worker killed mid-job) and rerunning them.

The Job row is the truth: a row still queued or started whose RQ job is gone, failed
without the row knowing, or has not sent a heartbeat for a while, is put back on the
queue under the same id. The job resumes from the cursor its last chunk committed.
"""

import logging
from datetime import datetime, timedelta, timezone

from flask import current_app
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from rq.registry import StartedJobRegistry
from sqlalchemy import select

from portal.extensions import db
from portal.jobs import fail, put_on_queue
from portal.jobs.registry import JOB_FUNCTIONS
from portal.models import ACTIVE_JOB_STATUSES, Job, JobStatus
from portal.queue import get_queue, redis_connection

log = logging.getLogger(__name__)


def requeue_abandoned(stale_after_seconds=120):
    """Rerun every active job that no worker runs; returns the ids put back on the queue."""
    queue = get_queue()
    requeued = []
    rows = db.session.scalars(select(Job).where(Job.status.in_(ACTIVE_JOB_STATUSES))).all()
    for row in rows:
        if not _abandoned(row.id, stale_after_seconds):
            continue
        func = JOB_FUNCTIONS[row.kind]
        if row.attempts > current_app.config["JOB_RETRIES"]:
            fail(row, f"The worker running this job stopped {row.attempts} times; giving up.",
                 getattr(func, "on_failure", None))
            continue
        _forget_executions(row.id, queue)
        row.status = JobStatus.QUEUED
        row.error = "The worker running this job stopped; it was put back on the queue and resumes where it was."
        db.session.commit()
        put_on_queue(func, row.id)
        log.warning("Requeued abandoned job %s (%s)", row.id, row.kind)
        requeued.append(row.id)
    return requeued


def _forget_executions(job_id, queue):
    """Take the dead worker's executions of the job out of RQ's started registry."""
    try:
        rq_job = RQJob.fetch(job_id, connection=redis_connection())
    except NoSuchJobError:
        return
    StartedJobRegistry(queue=queue).remove_executions(rq_job)


def _abandoned(job_id, stale_after_seconds):
    """Whether nothing will run this job unless we put it back."""
    try:
        rq_job = RQJob.fetch(job_id, connection=redis_connection())
    except NoSuchJobError:
        return True  # Redis lost it (restarted without persistence, flushed)
    status = rq_job.get_status(refresh=True)
    if status in ("queued", "scheduled", "deferred"):
        return False
    if status == "started":
        beat = rq_job.last_heartbeat or rq_job.started_at
        if beat is None:
            return False
        if beat.tzinfo is None:
            beat = beat.replace(tzinfo=timezone.utc)
        return datetime.now(timezone.utc) - beat > timedelta(seconds=stale_after_seconds)
    return status in ("failed", "stopped", "canceled")
