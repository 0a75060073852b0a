"""The start page, a data source's table with keyset pagination and filters, and settings."""

import re

import pytest


@pytest.fixture
def lead(client, auth, world):
    auth.login("lead@acme.test")
    return client


def external_ids(html):
    return re.findall(r"<code>(C-\d+)</code>", html)


def test_start_page_lists_data_sources_with_kind_and_count(lead, world):
    page = lead.get("/").get_data(as_text=True)
    assert f'href="/data-sources/{world.calls}"' in page
    assert "Pipedrive · Deals" in page and "Manual" in page
    assert ">30<" in page


def test_data_source_page_shows_total_and_first_page_newest_first(app, lead, world):
    app.config["PAGE_SIZE"] = 10
    page = lead.get(f"/data-sources/{world.calls}").get_data(as_text=True)
    assert "30 registrations" in page
    assert external_ids(page) == [f"C-{n}" for n in range(29, 19, -1)]
    assert "Ann Able" in page and "deactivated" in page  # Ben Baker is deactivated


def test_keyset_pages_cover_every_row_once_forward_and_back(app, lead, world):
    app.config["PAGE_SIZE"] = 7
    seen, url, pages = [], f"/data-sources/{world.calls}", []
    while url:
        html = lead.get(url).get_data(as_text=True)
        pages.append(url)
        seen += external_ids(html)
        older = re.search(r'<a href="([^"]+)" hx-get="[^"]+" hx-target="#registrations" hx-push-url="true">Older', html)
        url = older.group(1).replace("&amp;", "&") if older else None
    assert seen == [f"C-{n}" for n in range(29, -1, -1)]
    html = lead.get(pages[-1]).get_data(as_text=True)
    newer = re.search(r'<a href="([^"]+)" hx-get="[^"]+" hx-target="#registrations" hx-push-url="true">← Newer', html)
    back = lead.get(newer.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert external_ids(back) == [f"C-{n}" for n in range(8, 1, -1)]  # the page before the last (C-1, C-0)


def test_filter_by_period_and_employee_narrows_the_table(lead, world):
    html = lead.get(f"/data-sources/{world.calls}?date_from=2025-01-03&date_to=2025-01-08&employee={world.ann}").get_data(as_text=True)
    assert external_ids(html) == ["C-6", "C-4", "C-2"]


def test_period_ending_before_it_starts_gets_a_message(lead, world):
    html = lead.get(f"/data-sources/{world.calls}?date_from=2025-02-01&date_to=2025-01-01").get_data(as_text=True)
    assert "The end of the period is before its start." in html


def test_htmx_request_gets_only_the_table_fragment(lead, world):
    response = lead.get(f"/data-sources/{world.calls}", headers={"HX-Request": "true"})
    html = response.get_data(as_text=True)
    assert "<html" not in html and "30 registrations" in html
    assert "HX-Request" in response.headers["Vary"]
    restore = lead.get(f"/data-sources/{world.calls}",
                       headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert "<html" in restore.get_data(as_text=True)


def test_bad_page_cursor_is_a_clear_400(lead, world):
    response = lead.get(f"/data-sources/{world.calls}?after=garbage")
    assert response.status_code == 400
    assert "That page link is not valid." in response.get_data(as_text=True)


def test_settings_show_fields_and_connector_but_never_secrets(lead, world):
    html = lead.get(f"/data-sources/{world.deals}/settings").get_data(as_text=True)
    assert "Amount" in html and "Pipedrive" in html and "Deals" in html
    assert "Stored on the server, not shown" in html
    assert "very-secret-token" not in html
