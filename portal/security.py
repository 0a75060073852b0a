"""Security headers, cookies marked Secure over HTTPS, and loading the logged-in user."""

from flask.sessions import SecureCookieSessionInterface
from flask import request

from portal.extensions import db, login_manager
from portal.models import User

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "object-src 'none'",
    ]
)


class SessionInterface(SecureCookieSessionInterface):
    """The session cookie is Secure whenever the request came over HTTPS."""

    def get_cookie_secure(self, app):
        """Secure when configured so, or when this request is HTTPS."""
        return super().get_cookie_secure(app) or (bool(request) and request.is_secure)


def init_app(app):
    """Install the session interface, the headers and the user loader."""
    app.session_interface = SessionInterface()

    @app.after_request
    def set_security_headers(response):
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if request.is_secure:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response


@login_manager.user_loader
def load_user(user_id):
    """Flask-Login's hook: the user for a session's id."""
    return db.session.get(User, int(user_id))
