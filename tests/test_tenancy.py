"""Nobody sees another organization's data: every data source route is a 404 across tenants."""

import pytest


def data_source_routes(app):
    """Every rule that takes a data source id and a logged-in user, with its state-changing methods.

    The JSON API takes no session at all, only a data source's token (tests/test_api.py: a
    session, another data source's token and a revoked one are all refused).
    """
    for rule in app.url_map.iter_rules():
        if "data_source_id" in rule.arguments and not rule.endpoint.startswith("api."):
            yield rule


def test_there_are_data_source_routes_to_check(app):
    assert len(list(data_source_routes(app))) >= 2


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_every_data_source_route_is_404_for_another_organization(app, client, auth, world, method):
    auth.login("lead@globex.test")
    headers = auth.htmx_headers()
    checked = 0
    for rule in data_source_routes(app):
        if method not in rule.methods:
            continue
        url = rule.build({"data_source_id": world.calls, **_other_args(rule)}, append_unknown=False)[1]
        response = client.open(url, method=method, headers=headers, data={})
        assert response.status_code == 404, (rule.rule, method, response.status_code)
        checked += 1
    if method == "GET":
        assert checked >= 2


def test_unknown_data_source_is_404(client, auth, world):
    auth.login("lead@acme.test")
    assert client.get("/data-sources/999999").status_code == 404


def test_support_staff_open_every_organization(client, auth, world):
    auth.login("support@portal.test")
    index = client.get("/").get_data(as_text=True)
    assert "Calls" in index and "Globex Deals" in index
    assert client.get(f"/data-sources/{world.globex_deals}").status_code == 200
    assert client.get(f"/data-sources/{world.calls}/settings").status_code == 200


def test_viewer_sees_their_own_organization(client, auth, world):
    auth.login("viewer@acme.test")
    assert client.get(f"/data-sources/{world.calls}").status_code == 200
    assert client.get(f"/data-sources/{world.globex_deals}").status_code == 404


def _other_args(rule):
    """Placeholder values for any other URL arguments."""
    return {name: 1 for name in rule.arguments if name != "data_source_id"}
