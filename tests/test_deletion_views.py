"""Selecting and deleting through the pages: htmx partials, permissions, CSRF and bad input."""

import re

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.operations.listing import RegistrationFilter
from portal.models import DataSource, DeletionBatch, Job, Registration, Suppression
from tests.conftest import run_queued_jobs


def reg_ids(data_source_id, *external_ids):
    rows = db.session.execute(sa.select(Registration.external_id, Registration.id)
                              .where(*RegistrationFilter(data_source_id).clauses())).all()
    by_external = dict(rows)
    return [by_external[e] for e in external_ids]


def live_count(data_source_id):
    return db.session.scalar(sa.select(sa.func.count()).where(*RegistrationFilter(data_source_id).clauses()))


@pytest.fixture
def lead(client, auth, world):
    auth.login("lead@acme.test")
    return auth


def tick(client, auth, data_source_id, registration_id, checked=True, **context):
    data = {"registration_id": str(registration_id), **context}
    if checked:
        data["checked"] = "1"
    return client.post(f"/data-sources/{data_source_id}/selection/tick", data=data, headers=auth.htmx_headers())


def confirm_and_delete(client, auth, data_source_id, **form):
    dialog = client.get(f"/data-sources/{data_source_id}/delete/confirm", headers=auth.htmx_headers())
    expected = re.search(r'name="expected_count" value="(\d+)"', dialog.get_data(as_text=True)).group(1)
    response = client.post(f"/data-sources/{data_source_id}/delete", data={"expected_count": expected, **form},
                           headers=auth.htmx_headers())
    return dialog, response


def test_rows_have_named_checkboxes_and_a_page_checkbox(client, lead, world):
    html = client.get(f"/data-sources/{world.calls}").get_data(as_text=True)
    assert 'aria-label="Select registration C-29"' in html
    assert 'aria-label="Select all on this page"' in html
    assert re.search(r'<button type="button" class="danger" disabled[^>]*>Delete</button>', html)


def test_ticking_updates_the_selection_bar_and_enables_delete(client, lead, world):
    ids = reg_ids(world.calls, "C-1", "C-2", "C-3")
    for registration_id in ids:
        response = tick(client, lead, world.calls, registration_id)
    html = response.get_data(as_text=True)
    assert "3 selected" in html and "<html" not in html
    assert 'id="delete-actions" class="bottom-actions" hx-swap-oob="true"' in html
    assert not re.search(r'class="danger" disabled', html)
    html = tick(client, lead, world.calls, ids[0], checked=False).get_data(as_text=True)
    assert "2 selected" in html


def test_selection_survives_paging(app, client, lead, world):
    app.config["PAGE_SIZE"] = 10
    first = reg_ids(world.calls, "C-29")[0]
    tick(client, lead, world.calls, first)
    html = client.get(f"/data-sources/{world.calls}?after=2025-01-20.{reg_ids(world.calls, 'C-19')[0] + 1}").get_data(as_text=True)
    assert "1 selected" in html
    back = client.get(f"/data-sources/{world.calls}").get_data(as_text=True)
    assert re.search(rf'id="select-{first}" aria-label="Select registration C-29" checked', back)


def test_select_page_then_all_matching_selects_the_whole_filter(app, client, lead, world):
    app.config["PAGE_SIZE"] = 10
    page_ids = ",".join(str(i) for i in reg_ids(world.calls, *[f"C-{n}" for n in range(29, 19, -1)]))
    html = client.post(f"/data-sources/{world.calls}/selection/page", data={"page_ids": page_ids, "checked": "1"},
                       headers=lead.htmx_headers()).get_data(as_text=True)
    assert "10 selected" in html and "Select all 30 matching" in html
    html = client.post(f"/data-sources/{world.calls}/selection/all", headers=lead.htmx_headers()).get_data(as_text=True)
    assert "All 30 matching selected" in html
    dialog, response = confirm_and_delete(client, lead, world.calls)
    assert "Delete 30 registrations" in dialog.get_data(as_text=True)
    assert response.status_code == 200 and live_count(world.calls) == 0
    assert "0 registrations" in response.get_data(as_text=True)
    assert live_count(world.deals) == 30 and live_count(world.globex_deals) == 30


def test_all_matching_follows_the_filter(app, client, lead, world):
    client.post(f"/data-sources/{world.calls}/selection/all", data={"employee": str(world.ben)}, headers=lead.htmx_headers())
    dialog, response = confirm_and_delete(client, lead, world.calls, employee=str(world.ben))
    text = dialog.get_data(as_text=True)
    assert "Delete 15 registrations" in text and "Ben Baker (deactivated): 15" in text
    assert live_count(world.calls) == 15
    html = client.get(f"/data-sources/{world.calls}").get_data(as_text=True)
    assert "0 selected" in html


def test_confirmation_tells_count_period_employees_and_no_warning_for_manual(client, lead, world):
    for registration_id in reg_ids(world.calls, "C-1", "C-2", "C-3"):
        tick(client, lead, world.calls, registration_id)
    dialog, response = confirm_and_delete(client, lead, world.calls)
    text = dialog.get_data(as_text=True)
    assert "<dialog" in text and "Delete 3 registrations" in text
    assert "2025-01-02 to 2025-01-04" in text and "Ann Able: 1" in text and "Ben Baker (deactivated): 2" in text
    assert "import them again" not in text and "Keep them deleted" not in text
    body = response.get_data(as_text=True)
    assert "27 registrations" in body and "Deleted 3 registrations." in body and ">Undo</button>" in body
    assert live_count(world.calls) == 27


def test_warning_for_a_connector_without_automatic_deletion(client, lead, world):
    tick(client, lead, world.activities, reg_ids(world.activities, "A-1")[0])
    text = client.get(f"/data-sources/{world.activities}/delete/confirm", headers=lead.htmx_headers()).get_data(as_text=True)
    assert "Pipedrive will import them again." in text
    assert "Delete it in Pipedrive first" in text
    assert "Keep them deleted: skip them in future imports" in text


def test_notice_for_a_connector_with_automatic_deletion(client, lead, world):
    tick(client, lead, world.deals, reg_ids(world.deals, "D-1")[0])
    text = client.get(f"/data-sources/{world.deals}/delete/confirm", headers=lead.htmx_headers()).get_data(as_text=True)
    assert "Deleting here does not delete them in Pipedrive." in text
    assert "Deletions made in Pipedrive are removed here automatically." in text


def test_keep_them_deleted_lists_the_ids_in_settings_where_they_can_be_removed(client, lead, world):
    tick(client, lead, world.activities, reg_ids(world.activities, "A-1")[0])
    confirm_and_delete(client, lead, world.activities, suppress="1")
    settings = client.get(f"/data-sources/{world.activities}/settings").get_data(as_text=True)
    assert "<code>A-1</code>" in settings and "Import again" in settings
    suppression = db.session.scalar(sa.select(Suppression))
    response = client.post(f"/data-sources/{world.activities}/suppressions/{suppression.id}/remove",
                           headers={"X-CSRFToken": lead.csrf_token()})
    assert response.status_code == 302
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Suppression)) == 0


def test_undo_from_the_toast_brings_them_back(client, lead, world):
    for registration_id in reg_ids(world.calls, "C-1", "C-2", "C-3"):
        tick(client, lead, world.calls, registration_id)
    _, response = confirm_and_delete(client, lead, world.calls)
    undo = re.search(r'hx-post="(/data-sources/\d+/deleted/\d+/restore)"', response.get_data(as_text=True)).group(1)
    restored = client.post(undo, data={"from": "toast"}, headers=lead.htmx_headers()).get_data(as_text=True)
    assert "30 registrations" in restored and "Restored 3 registrations." in restored
    assert live_count(world.calls) == 30


def test_deleted_page_lists_batches_and_restores(client, lead, world):
    tick(client, lead, world.calls, reg_ids(world.calls, "C-5")[0])
    confirm_and_delete(client, lead, world.calls, reason="duplicate call")
    page = client.get(f"/data-sources/{world.calls}/deleted").get_data(as_text=True)
    assert "Selected registrations" in page and "duplicate call" in page and ">Restore</button>" in page
    batch = db.session.scalar(sa.select(DeletionBatch))
    response = client.post(f"/data-sources/{world.calls}/deleted/{batch.id}/restore", headers={"X-CSRFToken": lead.csrf_token()})
    assert response.status_code == 302
    assert "Restored 1 registration" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert live_count(world.calls) == 30


def test_empty_selection_gets_a_message_and_deletes_nothing(client, lead, world):
    response = client.get(f"/data-sources/{world.calls}/delete/confirm", headers=lead.htmx_headers())
    assert response.status_code == 422 and "Nothing is selected" in response.get_data(as_text=True)
    response = client.post(f"/data-sources/{world.calls}/delete", data={"expected_count": "0"}, headers=lead.htmx_headers())
    assert response.status_code == 422 and "Nothing is selected" in response.get_data(as_text=True)
    assert live_count(world.calls) == 30


def test_ticking_an_id_of_another_data_source_is_refused(client, lead, world):
    foreign = reg_ids(world.globex_deals, "G-1")[0]
    response = tick(client, lead, world.calls, foreign)
    assert response.status_code == 400
    assert "not in this data source" in response.get_data(as_text=True)
    assert response.headers["HX-Retarget"] == "#messages"


def test_stale_selection_is_refused_and_deletes_nothing(client, lead, world):
    for registration_id in reg_ids(world.calls, "C-1", "C-2"):
        tick(client, lead, world.calls, registration_id)
    response = client.post(f"/data-sources/{world.calls}/delete", data={"expected_count": "3"}, headers=lead.htmx_headers())
    assert response.status_code == 422 and "selection changed" in response.get_data(as_text=True)
    assert live_count(world.calls) == 30


def test_viewers_get_no_checkboxes_and_the_endpoints_refuse(client, auth, world):
    auth.login("viewer@acme.test")
    html = client.get(f"/data-sources/{world.calls}").get_data(as_text=True)
    assert "Select registration" not in html and ">Delete</button>" not in html
    registration_id = reg_ids(world.calls, "C-1")[0]
    assert tick(client, auth, world.calls, registration_id).status_code == 403
    response = client.post(f"/data-sources/{world.calls}/delete", data={"expected_count": "1"}, headers=auth.htmx_headers())
    assert response.status_code == 403 and live_count(world.calls) == 30


def test_state_changes_without_csrf_token_are_refused(client, lead, world):
    registration_id = reg_ids(world.calls, "C-1")[0]
    response = client.post(f"/data-sources/{world.calls}/selection/tick",
                           data={"registration_id": registration_id, "checked": "1"}, headers={"HX-Request": "true"})
    assert response.status_code == 400 and "CSRF" in response.get_data(as_text=True)
    response = client.post(f"/data-sources/{world.calls}/delete", data={"expected_count": "30"})
    assert response.status_code == 400 and live_count(world.calls) == 30


def test_support_staff_must_give_a_reason(client, auth, world):
    auth.login("support@portal.test")
    tick(client, auth, world.globex_deals, reg_ids(world.globex_deals, "G-1")[0])
    _, response = confirm_and_delete(client, auth, world.globex_deals)
    assert response.status_code == 422 and "must give a reason" in response.get_data(as_text=True)
    _, response = confirm_and_delete(client, auth, world.globex_deals, reason="customer ticket 42")
    assert response.status_code == 200 and live_count(world.globex_deals) == 29


def test_large_selection_becomes_a_background_job(app, client, lead, world):
    app.config["INLINE_DELETE_LIMIT"] = 5
    client.post(f"/data-sources/{world.calls}/selection/all", headers=lead.htmx_headers())
    _, response = confirm_and_delete(client, lead, world.calls)
    html = response.get_data(as_text=True)
    assert "<progress" in html and "Deleting in the background" in html
    job = db.session.scalar(sa.select(Job))
    assert job.kind == "delete_selected" and job.params["expected_count"] == 30
    run_queued_jobs()
    db.session.expire_all()
    assert db.session.get(Job, job.id).status == "finished" and live_count(world.calls) == 0
    assert db.session.get(DataSource, world.calls).registration_count == 0


def test_concurrent_ticks_lose_none(app, client, lead, world):
    """Quick ticks arrive as overlapping requests; every one of them must count."""
    from concurrent.futures import ThreadPoolExecutor

    headers = lead.htmx_headers()
    cookie = client.get_cookie("session").value
    ids = reg_ids(world.calls, *[f"C-{n}" for n in range(12)])

    def tick_one(registration_id):
        with app.test_client() as other:
            other.set_cookie("session", cookie)
            return other.post(f"/data-sources/{world.calls}/selection/tick",
                              data={"registration_id": str(registration_id), "checked": "1"}, headers=headers).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert set(pool.map(tick_one, ids)) == {200}
    assert "12 selected" in client.get(f"/data-sources/{world.calls}").get_data(as_text=True)


@pytest.mark.parametrize("db_backend", ["sqlite", "postgresql"])
def test_the_dialog_says_how_many_ticked_ones_the_sql_source_still_has(request, db_backend, client, lead, world,
                                                                        tmp_path):
    from datetime import date

    from portal.connectors.base import Period
    from portal.connectors.sql import SqlReader
    from portal.demo import sales_rows, write_source_database
    from portal.operations.importing import import_period
    from portal.operations.progress import NO_PROGRESS

    rows = sales_rows(today=date(2025, 12, 31))
    # The original: a SQLite file, or a table beside the portal's in PostgreSQL.
    url = request.getfixturevalue("postgres_url") if db_backend == "postgresql" else \
        f"sqlite:///{tmp_path / 'original.sqlite3'}"
    write_source_database(url, rows)
    ds = DataSource(organization_id=world.acme, name="Sales", connector="sql", source_type="table",
                    settings={"table": "sales", "id_column": "id", "date_column": "sold_at",
                              "employee_column": "employee_email"}, secrets={"url": url})
    db.session.add(ds)
    db.session.commit()
    import_period(ds.id, Period(date(2025, 1, 1), date(2025, 3, 31)), reader=SqlReader(), progress=NO_PROGRESS)
    first, second, third = db.session.scalars(sa.select(Registration.external_id).where(
        Registration.data_source_id == ds.id).order_by(Registration.id).limit(3)).all()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DELETE FROM sales WHERE id = {int(first)}"))  # gone at the source only
    for registration_id in reg_ids(ds.id, first, second, third):
        tick(client, lead, ds.id, registration_id)
    text = client.get(f"/data-sources/{ds.id}/delete/confirm", headers=lead.htmx_headers()).get_data(as_text=True)
    assert 'data-at-source="2"' in text and "2 of the 3 registrations are still in the original database." in text

    with engine.begin() as conn:
        conn.execute(sa.text(f"DELETE FROM sales WHERE id IN ({int(second)}, {int(third)})"))
    text = client.get(f"/data-sources/{ds.id}/delete/confirm", headers=lead.htmx_headers()).get_data(as_text=True)
    assert "None of them are in the original database any more." in text
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE sales"))  # the source is unreadable: the dialog still opens, without the line
    engine.dispose()
    response = client.get(f"/data-sources/{ds.id}/delete/confirm", headers=lead.htmx_headers())
    assert response.status_code == 200 and "data-at-source" not in response.get_data(as_text=True)
    assert "Delete 3 registrations" in response.get_data(as_text=True)


def test_the_dialog_says_how_many_ticked_deals_pipedrive_still_has(app, client, lead, world, pipedrive_sandbox):
    from datetime import date

    import httpx

    from portal.connectors import reader_for
    from portal.connectors.base import Period
    from portal.operations.importing import import_period
    from portal.operations.progress import NO_PROGRESS

    ds = DataSource(organization_id=world.acme, name="PD", connector="pipedrive", source_type="deals",
                    settings={"base_url": pipedrive_sandbox.base_url}, secrets={"api_token": "sandbox-token"})
    db.session.add(ds)
    db.session.commit()
    import_period(ds.id, Period(date(2025, 1, 1), date(2025, 3, 31)), reader=reader_for("pipedrive"),
                  progress=NO_PROGRESS)
    first, second, third = db.session.scalars(sa.select(Registration.external_id).where(
        Registration.data_source_id == ds.id).order_by(Registration.id).limit(3)).all()
    response = httpx.delete(f"{pipedrive_sandbox.base_url}/api/v2/deals/{first}",
                            headers={"x-api-token": "sandbox-token"})
    assert response.status_code == 200  # deleted in Pipedrive, still here (no webhook registered)
    for registration_id in reg_ids(ds.id, first, second, third):
        tick(client, lead, ds.id, registration_id)
    text = client.get(f"/data-sources/{ds.id}/delete/confirm", headers=lead.htmx_headers()).get_data(as_text=True)
    assert 'data-at-source="2"' in text and "2 of the 3 registrations are still in Pipedrive." in text
