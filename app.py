"""Entry point: `flask --app app run`, `gunicorn app:app`, `flask --app app worker`."""

from portal import create_app

app = create_app()
