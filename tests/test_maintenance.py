"""The scheduled purge: `flask cron`'s schedule enqueues it and a worker purges expired deletions."""

from datetime import timedelta

import sqlalchemy as sa

from portal.extensions import db
from portal.jobs.maintenance import cron_scheduler
from portal.models import DeletionBatch, Registration, utcnow
from portal.operations.deletion import Selection, delete_registrations
from portal.operations.listing import RegistrationFilter
from portal.queue import get_queue, redis_connection
from tests.conftest import run_queued_jobs


def test_the_schedule_enqueues_the_purge_and_a_worker_runs_it(app, world):
    expired = delete_registrations(Selection(RegistrationFilter(world.calls)), actor_id=world.lead, expected_count=30)
    kept = delete_registrations(Selection(RegistrationFilter(world.deals)), actor_id=world.lead, expected_count=30)
    db.session.get(DeletionBatch, expired.id).expires_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    scheduler = cron_scheduler(redis_connection(), app.config["RQ_QUEUE"], purge_interval=3600)
    enqueued = scheduler.enqueue_jobs()
    assert [job.func.__name__ for job in enqueued] == ["purge_expired", "requeue_abandoned_jobs"]
    assert get_queue().count == 2
    run_queued_jobs()
    db.session.expire_all()
    assert db.session.get(DeletionBatch, expired.id).status == "purged"
    assert db.session.get(DeletionBatch, kept.id).status == "deleted"
    physically = dict(db.session.execute(sa.select(Registration.data_source_id, sa.func.count())
                                         .group_by(Registration.data_source_id)).all())
    assert world.calls not in physically and physically[world.deals] == 30  # purged for good / still restorable


def test_scheduled_sync_starts_an_import_per_integration_and_skips_busy_ones(app, world):
    from portal.jobs.delete_all import start_delete_all
    from portal.jobs.maintenance import sync_recent
    from portal.models import DataSource, Job, User

    db.session.get(DataSource, world.activities).settings = {"scheduled_sync": False}
    db.session.commit()
    start_delete_all(db.session.get(DataSource, world.globex_deals), db.session.get(User, world.globex_lead))
    assert sync_recent() == {"started": 1, "busy": 1}
    imports = db.session.scalars(sa.select(Job).where(Job.kind == "import")).all()
    assert [(job.data_source_id, job.params["connector"]) for job in imports] == [(world.deals, "pipedrive")]
    assert imports[0].params["start"] < imports[0].params["end"]


def test_the_schedule_includes_the_sync_when_it_is_on(app):
    scheduler = cron_scheduler(redis_connection(), app.config["RQ_QUEUE"], purge_interval=3600, sync_interval=900)
    assert [job.func.__name__ for job in scheduler.get_jobs()] == ["sync_recent", "purge_expired", "requeue_abandoned_jobs"]
