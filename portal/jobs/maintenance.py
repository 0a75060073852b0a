"""Scheduled upkeep, enqueued by `flask cron`: purging expired deletions, rerunning abandoned jobs."""

import logging

from rq.cron import CronScheduler

from portal.operations.deletion import purge_expired_batches

log = logging.getLogger(__name__)


def purge_expired():
    """RQ entry point: physically remove deletion batches whose restore window has closed."""
    from flask import current_app

    purged = purge_expired_batches(chunk_size=current_app.config["PURGE_CHUNK_SIZE"])
    log.info("Purged %s registrations past their restore window", purged)
    return {"purged": purged}


def requeue_abandoned_jobs():
    """RQ entry point: rerun jobs whose worker died mid-job."""
    from portal.jobs.recovery import requeue_abandoned

    return {"requeued": len(requeue_abandoned())}


def sync_recent():
    """RQ entry point: import the last days of every integration, with the import job and its guard."""
    from flask import current_app

    from portal.operations.syncing import integrations_to_sync, recent_period
    from portal.jobs import JobAlreadyRunning
    from portal.jobs.importing import start_import

    period = recent_period(current_app.config["SYNC_DAYS"])
    started, busy = 0, 0
    for data_source in integrations_to_sync():
        try:
            start_import(data_source, None, period)
            started += 1
        except JobAlreadyRunning:
            busy += 1  # it is being imported or deleted right now; the next run catches up
    log.info("Scheduled sync: %s imports started, %s data sources busy", started, busy)
    return {"started": started, "busy": busy}


def cron_scheduler(connection, queue_name, purge_interval, recovery_interval=60, sync_interval=None):
    """The schedule: what runs how often (one `flask cron` per deployment is enough)."""
    scheduler = CronScheduler(connection=connection)
    if sync_interval:
        scheduler.register(sync_recent, queue_name, interval=sync_interval, job_timeout=600)
    scheduler.register(purge_expired, queue_name, interval=purge_interval, job_timeout=6 * 3600)
    scheduler.register(requeue_abandoned_jobs, queue_name, interval=recovery_interval, job_timeout=600)
    return scheduler
