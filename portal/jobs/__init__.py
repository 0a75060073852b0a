"""RQ entry points and the one way to start a job: a durable Job row plus an RQ job."""

import functools
import logging
import traceback
import uuid

from flask import current_app
from rq import Retry, get_current_job
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal.extensions import db
from portal.models import Job, JobStatus, utcnow
from portal.operations.progress import Progress
from portal.queue import get_queue

log = logging.getLogger(__name__)


# What people call each kind of job (the job partial shows the same names).
JOB_LABELS = {"delete_all": "Delete all registrations", "delete_selected": "Delete selected registrations",
              "restore": "Restore registrations", "delete_data_source": "Delete data source",
              "recount": "Recount registrations", "import": "Import"}

# Kinds that hold their data source while queued or running: one of them per data source at a time.
EXCLUSIVE_KINDS = frozenset({"delete_all", "delete_selected", "restore", "delete_data_source", "import"})


def job_label(job):
    """What people call the job's kind."""
    return JOB_LABELS.get(job.kind, job.kind.replace("_", " "))


class JobCanceled(Exception):
    """Someone canceled the running job; raised at its next checkpoint, before that chunk commits."""


class JobAlreadyRunning(Exception):
    """Another exclusive job holds this data source."""

    def __init__(self, job):
        super().__init__(f"“{job_label(job)}” is already running for this data source.")
        self.job = job


def lock_key_for(data_source_id):
    """The lock that one destructive or import job per data source holds."""
    return f"data_source:{data_source_id}"


def enqueue(func, kind, *, organization_id, data_source_id=None, requested_by_id=None, params=None):
    """Write the Job row, then put the job on the queue; refuse if the data source is busy."""
    exclusive = kind in EXCLUSIVE_KINDS
    job = Job(
        id=uuid.uuid4().hex,
        kind=kind,
        organization_id=organization_id,
        data_source_id=data_source_id,
        requested_by_id=requested_by_id,
        params=params or {},
        lock_key=lock_key_for(data_source_id) if exclusive else None,
    )
    db.session.add(job)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise JobAlreadyRunning(exclusive_job_for(data_source_id)) from None
    try:
        put_on_queue(func, job.id)
    except Exception as exc:
        finish(job, JobStatus.FAILED, error=f"Could not queue the job: {exc}")
        raise
    return job


def put_on_queue(func, job_id):
    """Enqueue func(job_id) under the Job row's id, with explicit timeout and retries."""
    config = current_app.config
    get_queue().enqueue(
        func,
        job_id,
        job_id=job_id,
        job_timeout=config["JOB_TIMEOUT_SECONDS"],
        retry=Retry(max=config["JOB_RETRIES"], interval=[2, 10, 60]) if config["JOB_RETRIES"] else None,
        result_ttl=7 * 24 * 3600,
        failure_ttl=30 * 24 * 3600,
    )


def exclusive_job_for(data_source_id):
    """The destructive or import job holding the data source, if one is queued or running."""
    return db.session.query(Job).filter_by(lock_key=lock_key_for(data_source_id)).one_or_none()


class JobProgress(Progress):
    """Writes progress to the Job row (committed with the caller's chunk) and to job.meta."""

    def __init__(self, job):
        self.job = job

    def update(self, done, total=None, cursor=None):
        """Record progress on the row; it is committed together with the work it describes.

        This is the job's checkpoint: if someone has canceled it, it stops here (JobCanceled),
        and the chunk this progress belongs to is rolled back.
        """
        canceled = db.session.scalar(select(Job.cancel_requested_at).where(Job.id == self.job.id))
        if canceled is not None:
            raise JobCanceled()
        self.job.progress_done = done
        if total is not None:
            self.job.progress_total = total
        if cursor is not None:
            self.job.cursor = cursor
        rq_job = get_current_job()
        if rq_job is not None:
            rq_job.meta.update(progress_done=done, progress_total=self.job.progress_total)
            rq_job.save_meta()

    @property
    def cursor(self):
        """Where a previous attempt of this job stopped."""
        return dict(self.job.cursor or {})


def tracked(func=None, *, on_failure=None):
    """Run func(job, progress) as an RQ job, keeping the Job row's status the truth.

    on_failure(job, error) runs after the last attempt has failed, to leave data consistent.
    """
    if func is None:
        return functools.partial(tracked, on_failure=on_failure)

    @functools.wraps(func)
    def run(job_id):
        job = db.session.get(Job, job_id)
        if job is None:
            raise LookupError(f"No job row {job_id}")
        if not job.is_active:
            log.info("Job %s is already %s; nothing to do", job_id, job.status)
            return job.counts
        job.status = JobStatus.STARTED
        job.started_at = job.started_at or utcnow()
        job.attempts += 1
        db.session.commit()
        try:
            counts = func(job, JobProgress(job))
        except JobCanceled:
            db.session.rollback()
            log.info("Job %s stopped: canceled", job_id)
            fail(job, "Canceled while it ran; what it had finished before stays.", on_failure, JobStatus.CANCELED)
            return job.counts  # not an error for RQ: no retry
        except Exception as exc:
            db.session.rollback()
            rq_job = get_current_job()
            error = f"{type(exc).__name__}: {exc}"
            if rq_job is not None and rq_job.retries_left:
                job.error = f"Attempt {job.attempts} failed ({error}); retrying."
                job.status = JobStatus.QUEUED
                db.session.commit()
            else:
                log.error("Job %s failed:\n%s", job_id, traceback.format_exc())
                fail(job, error, on_failure)
            raise
        job.counts = counts or {}
        finish(job, JobStatus.FINISHED)
        return job.counts

    run.on_failure = on_failure
    return run


def fail(job, error, on_failure=None, status=JobStatus.FAILED):
    """Give up on a job: leave its data consistent, then close the row (failed, or canceled)."""
    if on_failure:
        on_failure(job, error)
    finish(job, status, error=error)


def finish(job, status, error=None):
    """Close the row and release the data source's lock."""
    job.status = status
    job.error = error
    job.lock_key = None
    job.finished_at = utcnow()
    db.session.commit()
