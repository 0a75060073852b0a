"""Logging in and out, password hashing, cookies, CSRF and the login rate limit."""

import re

from portal.extensions import db
from portal.models import User


def test_login_page_has_labelled_fields_and_button(client):
    page = client.get("/login").get_data(as_text=True)
    assert '<label for="email">Email</label>' in page
    assert '<label for="password">Password</label>' in page
    assert ">Log in</button>" in page


def test_lead_logs_in_and_sees_their_data_sources(client, auth, world):
    response = auth.login("lead@acme.test")
    assert response.status_code == 302
    page = client.get("/").get_data(as_text=True)
    assert "Calls" in page and "Deals" in page
    assert "Globex Deals" not in page


def test_wrong_password_is_refused_with_a_message(client, auth, world):
    response = auth.login("lead@acme.test", "wrong")
    assert response.status_code == 200
    assert "That email and password do not match an account." in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_passwords_are_stored_hashed(app, world):
    user = db.session.get(User, world.lead)
    assert "test-password" not in user.password_hash
    assert user.check_password("test-password") and not user.check_password("other")


def test_pages_need_a_login(client, world):
    response = client.get(f"/data-sources/{world.calls}")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_session_cookie_is_httponly_and_samesite_lax(client, auth, world):
    response = auth.login("lead@acme.test")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


def test_session_cookie_is_secure_over_https(client, world):
    page = client.get("/login", base_url="https://localhost").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post("/login", base_url="https://localhost", headers={"Referer": "https://localhost/login"},
                           data={"email": "lead@acme.test", "password": "test-password", "csrf_token": token})
    assert "Secure" in response.headers["Set-Cookie"]


def test_login_without_csrf_token_is_refused(client, world):
    response = client.post("/login", data={"email": "lead@acme.test", "password": "test-password"})
    assert response.status_code == 400
    assert client.get("/").status_code == 302


def test_logout_needs_csrf_and_logs_out(client, auth, world):
    auth.login()
    assert client.post("/logout").status_code == 400
    assert client.get("/").status_code == 200
    response = client.post("/logout", headers={"X-CSRFToken": auth.csrf_token()})
    assert response.status_code == 302
    assert client.get("/").status_code == 302


def test_login_attempts_are_rate_limited(app, client, auth, world):
    app.config["LOGIN_RATE_LIMIT"] = "3 per minute"
    for _ in range(3):
        assert auth.login("lead@acme.test", "wrong").status_code == 200
    response = auth.login("lead@acme.test", "test-password")
    assert response.status_code == 429
    assert "Too many login attempts" in response.get_data(as_text=True)


def test_security_headers_forbid_other_hosts(client):
    headers = client.get("/login").headers
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
