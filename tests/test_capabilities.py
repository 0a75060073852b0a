"""The "Automatic deletion" lookup: searching the connectors' declarations, the page, each data source's line."""

import re

import pytest

from portal import connectors
from portal.connectors import ConnectorInfo, DeletionMechanism, SourceType
from portal.operations.capabilities import all_capabilities, capability_of, search_capabilities


def names(rows):
    return [(row.connector.label, row.source_type.label) for row in rows]


def table_rows(html):
    """(integration, data source type, automatic deletion, mechanism) for each row of the table."""
    pattern = re.compile(r"<tr>\s*<td>(.*?)</td>\s*<td>(.*?)</td>\s*<td><span[^>]*>(.*?)</span></td>\s*<td>(.*?)</td>")
    return pattern.findall(html)


def varies_on(response):
    return [value.strip() for value in response.headers.get("Vary", "").split(",")]


def test_every_declared_source_type_is_a_row():
    declared = [(c.label, t.label) for c in connectors.CONNECTORS.values() for t in c.source_types.values()]
    assert names(all_capabilities()) == declared
    assert names(search_capabilities("")) == declared


def test_every_word_must_match_the_integration_or_the_type():
    assert names(search_capabilities("pipedrive activ")) == [("Pipedrive", "Activities")]
    assert names(search_capabilities("activ pipedrive")) == [("Pipedrive", "Activities")]
    assert names(search_capabilities("pipedrive table")) == []


def test_search_is_case_insensitive_and_matches_parts_of_words():
    assert names(search_capabilities("PIPE")) == [("Pipedrive", "Deals"), ("Pipedrive", "Activities")]
    assert names(search_capabilities("  sql   ")) == [("SQL database", "Table or query")]
    assert names(search_capabilities("eal")) == [("Pipedrive", "Deals")]
    assert search_capabilities("salesforce") == []


def test_status_and_mechanism_come_from_the_declarations():
    deals, activities = capability_of("pipedrive", "deals"), capability_of("pipedrive", "activities")
    assert (deals.status, deals.mechanism.label) == ("Supported", "Webhook push from the source")
    assert (activities.status, activities.mechanism) == ("Not supported", DeletionMechanism.NONE)
    assert capability_of("sql", "table").status == "Supported"
    assert capability_of("manual", "manual").status == "Not applicable"
    with pytest.raises(KeyError):
        capability_of("pipedrive", "leads")


@pytest.fixture
def lead(client, auth, world):
    auth.login("lead@acme.test")
    return client


def test_page_lists_every_connector_and_type(lead):
    response = lead.get("/automatic-deletion")
    assert response.status_code == 200 and "HX-Request" in varies_on(response)
    assert table_rows(response.get_data(as_text=True)) == [
        ("Manual", "Manual entries", "Not applicable", "None"),
        ("SQL database", "Table or query", "Supported", "Reconciled while importing a period"),
        ("Pipedrive", "Deals", "Supported", "Webhook push from the source"),
        ("Pipedrive", "Activities", "Not supported", "None"),
    ]


def test_a_newly_declared_connector_appears_without_touching_the_template(lead, monkeypatch):
    extra = ConnectorInfo("hubspot", "HubSpot", "HubSpot",
                          {"contacts": SourceType("contacts", "Contacts", DeletionMechanism.WEBHOOK)})
    monkeypatch.setitem(connectors.CONNECTORS, "hubspot", extra)
    text = lead.get("/automatic-deletion?q=hubspot").get_data(as_text=True)
    assert table_rows(text) == [("HubSpot", "Contacts", "Supported", "Webhook push from the source")]


def test_pipedrive_activ_shows_only_activities_not_supported(lead):
    text = lead.get("/automatic-deletion?q=pipedrive+activ").get_data(as_text=True)
    assert table_rows(text) == [("Pipedrive", "Activities", "Not supported", "None")]
    assert 'value="pipedrive activ"' in text


def test_pipedrive_shows_deals_supported(lead):
    rows = table_rows(lead.get("/automatic-deletion?q=pipedrive").get_data(as_text=True))
    assert ("Pipedrive", "Deals", "Supported", "Webhook push from the source") in rows
    assert [row[1] for row in rows] == ["Deals", "Activities"]


def test_no_match_says_so(lead):
    text = lead.get("/automatic-deletion?q=salesforce").get_data(as_text=True)
    assert table_rows(text) == []
    assert "No integration or data source type matches “salesforce”." in text


def test_search_box_is_labelled_and_searches_actively_and_without_javascript(lead):
    text = lead.get("/automatic-deletion").get_data(as_text=True)
    assert re.search(r'<label for="capability-search">Search</label>', text)
    box = re.search(r'<input type="search" id="capability-search" name="q"[^>]*>', text, re.S).group(0)
    assert 'hx-get="/automatic-deletion"' in box
    assert 'hx-trigger="input changed delay:200ms, search"' in box
    assert 'hx-target="#capability-rows"' in box and 'hx-push-url="true"' in box
    assert '<tbody id="capability-rows">' in text
    assert re.search(r'<form class="search" role="search" method="get" action="/automatic-deletion"', text)


def test_htmx_search_gets_only_the_rows(lead):
    response = lead.get("/automatic-deletion?q=pipedrive+activ", headers={"HX-Request": "true"})
    text = response.get_data(as_text=True)
    assert "HX-Request" in varies_on(response)
    assert "<html" not in text and "<tbody" not in text and "<h1>" not in text
    assert text.strip().startswith("<tr>")
    assert table_rows(text) == [("Pipedrive", "Activities", "Not supported", "None")]


def test_history_restore_gets_the_whole_page(lead):
    response = lead.get("/automatic-deletion?q=pipedrive",
                        headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert "<html" in response.get_data(as_text=True)
    assert "HX-Request" in varies_on(response)


def test_viewers_may_look_it_up_and_it_is_in_the_navigation(client, auth, world):
    auth.login("viewer@acme.test")
    text = client.get("/").get_data(as_text=True)
    assert '<a href="/automatic-deletion" >Automatic deletion</a>' in text
    page = client.get("/automatic-deletion").get_data(as_text=True)
    assert len(table_rows(page)) == 4
    assert '<a href="/automatic-deletion" aria-current="page">Automatic deletion</a>' in page


def test_logged_out_visitors_are_sent_to_log_in(client, world):
    response = client.get("/automatic-deletion")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("page", ["", "/settings", "/deleted"])
@pytest.mark.parametrize("source, line", [
    ("deals", "Supported</span> (webhook push from the source)"),
    ("activities", "Not supported</span>\n"),
    ("calls", "Not applicable</span> (registrations exist only in the portal)"),
])
def test_each_data_source_shows_its_own_line_with_a_link_to_the_lookup(lead, world, page, source, line):
    text = lead.get(f"/data-sources/{getattr(world, source)}{page}").get_data(as_text=True)
    shown = re.search(r'<p class="capability-line">(.*?)</p>', text, re.S).group(1)
    assert shown.startswith("Automatic registration deletion:")
    assert line in shown
    assert re.search(r'<a href="/automatic-deletion\?q=\w+', shown)
