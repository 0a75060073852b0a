"""The Redis connection and the RQ queue, bound to the app like an extension."""

from flask import current_app
from redis import Redis
from rq import Queue


def init_app(app):
    """Create one Redis connection pool for the app."""
    app.extensions["redis"] = Redis.from_url(app.config["REDIS_URL"])


def redis_connection():
    """The app's Redis client."""
    return current_app.extensions["redis"]


def get_queue():
    """The portal's RQ queue."""
    return Queue(current_app.config["RQ_QUEUE"], connection=redis_connection())
