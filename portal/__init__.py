"""The data source portal: an application factory that reads as a table of contents."""

from flask import Flask
from sqlalchemy import event
from werkzeug.middleware.proxy_fix import ProxyFix

from portal.config import INSTANCE_DIR, Config
from portal.extensions import csrf, db, limiter, login_manager, migrate


def create_app(test_config=None):
    """Create and configure the portal."""
    app = Flask(__name__, instance_path=str(INSTANCE_DIR))
    app.config.from_object(Config)
    if test_config:
        app.config.update(test_config)
    INSTANCE_DIR.mkdir(exist_ok=True)
    if app.config["TRUST_PROXY_HEADERS"]:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)

    register_extensions(app)
    register_security(app)
    register_blueprints(app)
    register_template_filters(app)
    register_commands(app)
    return app


def register_extensions(app):
    """Bind every extension to this app."""
    from portal import queue

    db.init_app(app)
    with app.app_context():
        for engine in db.engines.values():
            # The portal's own engines only: an original database a connector reads must not be
            # switched to WAL (a write, refused on a read-only connection to a rollback-journal file).
            event.listen(engine, "connect", _sqlite_pragmas)
    migrate.init_app(app, db, render_as_batch=True, compare_type=True)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Log in to see that page."
    csrf.init_app(app)
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["REDIS_URL"])
    limiter.init_app(app)
    queue.init_app(app)


def register_security(app):
    """Security headers, secure cookies over HTTPS, and the user loader."""
    from portal import security

    security.init_app(app)


def register_blueprints(app):
    """Mount one blueprint per area of the portal."""
    from portal.views import (api, audit_log, auth, capabilities, data_sources, delete_all, deletion, employees,
                              errors, importing, jobs, manual, selection, webhooks)

    app.register_blueprint(auth.bp)
    app.register_blueprint(data_sources.bp)
    app.register_blueprint(selection.bp)
    app.register_blueprint(deletion.bp)
    app.register_blueprint(delete_all.bp)
    app.register_blueprint(importing.bp)
    app.register_blueprint(jobs.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(capabilities.bp)
    app.register_blueprint(employees.bp)
    app.register_blueprint(manual.bp)
    app.register_blueprint(audit_log.bp)
    app.register_blueprint(api.bp)
    errors.init_app(app)


def register_template_filters(app):
    """Formatting used across templates."""
    from portal.views import formatting

    formatting.init_app(app)


def register_commands(app):
    """`flask worker`, `flask seed-demo` and friends."""
    from portal import commands

    commands.init_app(app)


def _sqlite_pragmas(dbapi_connection, connection_record):
    """SQLite: enforce foreign keys, and let the web process and workers share the file."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
