"""Browser tests: the portal served from a thread, driven by Playwright in Debian's Chromium."""

import os

import pytest

from tests.conftest import need_service

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Use the system Chromium: Playwright cannot download browsers here."""
    if not os.path.exists(CHROMIUM):
        need_service(f"{CHROMIUM} is missing: `apt-get install chromium` to run the browser tests.")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": ["--disable-background-networking", "--disable-component-update", "--disable-sync"],
    }


@pytest.fixture
def log_in(page, live_server):
    """Log the browser in through the login form."""

    def log_in_as(email, password="test-password"):
        page.goto(f"{live_server}/login")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        page.get_by_role("heading", name="Data sources").wait_for()

    return log_in_as
