"""Configuration read from the environment, with the embedded defaults for development."""

import os
from pathlib import Path

INSTANCE_DIR = Path(__file__).resolve().parent.parent / "instance"


def _bool(name, default=False):
    """Read a yes/no environment variable."""
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


class Config:
    """Settings for every environment; tests override them through create_app(test_config)."""

    SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-change-me")
    SQLALCHEMY_DATABASE_URI = os.environ.get(
        "DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'portal.sqlite3'}"
    )
    REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    RQ_QUEUE = os.environ.get("RQ_QUEUE", "portal")

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    # Behind a TLS-terminating proxy the request looks like plain HTTP; set this there.
    REMEMBER_COOKIE_SECURE = _bool("HTTPS_ONLY")
    TRUST_PROXY_HEADERS = _bool("TRUST_PROXY_HEADERS")

    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session
    LOGIN_RATE_LIMIT = os.environ.get("LOGIN_RATE_LIMIT", "10 per minute")
    RATELIMIT_HEADERS_ENABLED = True

    PAGE_SIZE = int(os.environ.get("PAGE_SIZE", "50"))
    RESTORE_WINDOW_DAYS = int(os.environ.get("RESTORE_WINDOW_DAYS", "30"))
    # Deletions up to this many rows run inside the request; bigger ones become jobs.
    INLINE_DELETE_LIMIT = int(os.environ.get("INLINE_DELETE_LIMIT", "5000"))
    DELETE_CHUNK_SIZE = int(os.environ.get("DELETE_CHUNK_SIZE", "10000"))
    PURGE_CHUNK_SIZE = int(os.environ.get("PURGE_CHUNK_SIZE", "100000"))
    # Scheduled sync: every integration imports its last SYNC_DAYS days this often (0: off).
    SYNC_INTERVAL_SECONDS = int(os.environ.get("SYNC_INTERVAL_SECONDS", "900"))
    SYNC_DAYS = int(os.environ.get("SYNC_DAYS", "7"))
    PURGE_INTERVAL_SECONDS = int(os.environ.get("PURGE_INTERVAL_SECONDS", "3600"))
    JOB_TIMEOUT_SECONDS = int(os.environ.get("JOB_TIMEOUT_SECONDS", str(6 * 3600)))
    JOB_RETRIES = int(os.environ.get("JOB_RETRIES", "3"))
    DEMO_SOURCE_DATABASE = os.environ.get(
        "DEMO_SOURCE_DATABASE", f"sqlite:///{INSTANCE_DIR / 'demo-source.sqlite3'}"
    )

    # sha384 of the vendored portal/static/htmx.min.js (htmx 2.0.11); a test recomputes it.
    HTMX_INTEGRITY = "sha384-2OatzQy1H+Zd/IIrjr1TcuDGqLXeHhbooAyJY1KdQMKnr4LZ22k31GBLdYKHmVjg"
