"""Scheduled upkeep, enqueued by `flask cron`: purging expired deletions, rerunning abandoned jobs."""

import logging

from rq.cron import CronScheduler

from portal.operations.deletion import purge_expired_batches

log = logging.getLogger(__name__)


def purge_expired():
    """RQ entry point: physically remove deletion batches whose restore window has closed."""
    purged = purge_expired_batches()
    log.info("Purged %s registrations past their restore window", purged)
    return {"purged": purged}


def requeue_abandoned_jobs():
    """RQ entry point: rerun jobs whose worker died mid-job."""
    from portal.jobs.recovery import requeue_abandoned

    return {"requeued": len(requeue_abandoned())}


def cron_scheduler(connection, queue_name, purge_interval, recovery_interval=60):
    """The schedule: what runs how often (one `flask cron` per deployment is enough)."""
    scheduler = CronScheduler(connection=connection)
    scheduler.register(purge_expired, queue_name, interval=purge_interval, job_timeout=6 * 3600)
    scheduler.register(requeue_abandoned_jobs, queue_name, interval=recovery_interval, job_timeout=600)
    return scheduler
