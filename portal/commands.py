"""Command-line entry points: `flask worker`, `flask seed-demo`."""

import logging

import click
from flask import current_app
from rq import Worker

from portal.extensions import db
from portal.queue import get_queue, redis_connection


class PortalWorker(Worker):
    """A forking RQ worker whose work horse never reuses the parent's database connections."""

    def main_work_horse(self, job, queue):
        """Drop inherited pooled connections in the forked child, without closing the parent's."""
        db.engine.dispose(close=False)
        return super().main_work_horse(job, queue)


@click.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@click.option("--name", default=None, help="Worker name (defaults to a random one).")
def worker_command(burst, name):
    """Run an RQ worker (forking, scheduler on) with the app context, against REDIS_URL."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    worker = PortalWorker([get_queue()], connection=redis_connection(), name=name)
    worker.work(burst=burst, with_scheduler=True, logging_level="INFO")


@click.command("cron")
def cron_command():
    """Enqueue scheduled jobs (the purge of expired deletions) on their intervals."""
    from portal.jobs.maintenance import cron_scheduler

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = current_app.config
    cron_scheduler(redis_connection(), config["RQ_QUEUE"], config["PURGE_INTERVAL_SECONDS"],
                   sync_interval=config["SYNC_INTERVAL_SECONDS"]).start()


@click.command("register-webhooks")
@click.option("--public-url", envvar="PORTAL_PUBLIC_URL", default="http://127.0.0.1:5000",
              help="Where the source can reach this portal.")
def register_webhooks_command(public_url):
    """Subscribe every Pipedrive Deals data source to deletion webhooks (safe to run again)."""
    from portal.connectors.base import ConnectorError
    from portal.operations.webhooks import ensure_deletion_webhook, webhook_data_sources

    for data_source in webhook_data_sources():
        url = f"{public_url.rstrip('/')}/webhooks/pipedrive/{data_source.id}"
        try:
            webhook_id = ensure_deletion_webhook(data_source, url)
        except ConnectorError as error:
            click.echo(f"{data_source.name}: webhook not registered ({error})")
        else:
            click.echo(f"{data_source.name}: deletion webhook {webhook_id} -> {url}")


@click.command("seed-demo")
@click.option("--if-empty", is_flag=True, help="Do nothing when the database has organizations.")
def seed_demo_command(if_empty):
    """Create the demo organizations, users, employees and data sources."""
    from portal import demo

    if demo.database_has_data():
        message = "The database already has data; the demo was not seeded."
        if if_empty:
            click.echo(message)
            return
        raise click.ClickException(message)
    summary = demo.seed(current_app.config["DEMO_SOURCE_DATABASE"])
    click.echo(summary)


def init_app(app):
    """Register the commands."""
    app.cli.add_command(worker_command)
    app.cli.add_command(cron_command)
    app.cli.add_command(seed_demo_command)
    app.cli.add_command(register_webhooks_command)
