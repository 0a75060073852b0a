"""Manual data sources: reading a CSV file row by row, importing none or only the valid rows in one
transaction, the single registration form, and the pages' permissions, CSRF and tenancy."""

import io
import re
from datetime import date

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from portal.extensions import db
from portal.models import AuditEvent, DataSource, Employee, Field, Job, Registration, Suppression
from portal.operations import manual_entry
from portal.operations.importing import ImportRefused
from portal.operations.manual_entry import (NONE_IF_ERRORS, VALID_ROWS, ImportFailed, RegistrationRejected,
                                            add_registration, import_rows, parse_csv)

both_databases = pytest.mark.parametrize("db_backend", ["sqlite", "postgresql"])


def text(content):
    """A text stream as the upload view makes one from the file's bytes."""
    data = content.encode() if isinstance(content, str) else content
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")


def calls(world):
    return db.session.get(DataSource, world.calls)


def registrations(data_source_id):
    """{external id: (date, employee id, values)} of every row of the data source."""
    rows = db.session.execute(sa.select(Registration.external_id, Registration.occurred_on, Registration.employee_id,
                                        Registration.values).where(Registration.data_source_id == data_source_id))
    return {r.external_id: (r.occurred_on, r.employee_id, r.values) for r in rows}


def counter(data_source_id):
    db.session.expire_all()
    return db.session.get(DataSource, data_source_id).registration_count


def audit_events(action):
    return db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)).all()


@pytest.fixture
def rich(world):
    """An Acme manual data source with a field of every type."""
    ds = DataSource(organization_id=world.acme, name="Visits", connector="manual", source_type="manual",
                    settings={}, secrets={})
    ds.fields = [Field(key="amount", label="Amount", type="number", position=0),
                 Field(key="won", label="Won", type="boolean", position=1),
                 Field(key="closed", label="Closed on", type="date", position=2),
                 Field(key="note", label="Note", type="text", position=3)]
    db.session.add(ds)
    db.session.commit()
    return ds


# Reading a file

def test_a_valid_file_gives_records_with_values_converted_by_field_type(rich):
    parsed = parse_csv(rich, text("external_id,date,employee_email,amount,won,closed,note\n"
                                  "v-1,2025-03-01,ann@acme.test,1250,yes,2025-03-05,First visit\n"
                                  "v-2,2025-03-02,,12.5,0,,\n"))
    assert parsed.file_error is None and parsed.problems == [] and parsed.rows == 2
    first, second = parsed.records
    assert (first.external_id, first.occurred_on, first.employee_email) == ("v-1", date(2025, 3, 1), "ann@acme.test")
    assert first.values == {"amount": 1250, "won": True, "closed": "2025-03-05", "note": "First visit"}
    assert second.employee_email is None and second.values == {"amount": 12.5, "won": False}


def test_columns_are_matched_by_key_or_label_whatever_the_case(rich):
    parsed = parse_csv(rich, text("External ID,DATE,Employee Email,AMOUNT,closed on,Note\n"
                                  "v-1,2025-03-01,ann@acme.test,3,2025-03-04,hello\n"))
    assert parsed.problems == []
    assert parsed.records[0].values == {"amount": 3, "closed": "2025-03-04", "note": "hello"}


def test_a_semicolon_separated_file_with_a_byte_order_mark_is_read(rich):
    parsed = parse_csv(rich, text("\ufeffdate;amount;note\n2025-03-01;7;a, b\n".encode("utf-8")))
    assert parsed.problems == [] and parsed.records[0].values == {"amount": 7, "note": "a, b"}


@pytest.mark.parametrize("cells, reason", [
    ("v-9,31/03/2025,,1,,", "Date: “31/03/2025” is not a date like 2025-03-31."),
    ("v-9,2025-02-30,,1,,", "Date: “2025-02-30” is not a date like 2025-03-31."),
    ("v-9,,,1,,", "The date is empty."),
    ("v-9,2025-03-01,,\"12,5\",,", "Amount: “12,5” is not a number. Write decimals with a dot and no thousands separators."),
    ("v-9,2025-03-01,,lots,,", "Amount: “lots” is not a number."),
    ("v-9,2025-03-01,,1,maybe,", "Won: “maybe” is not yes or no (write yes, no, true, false, 1 or 0)."),
    ("v-9,2025-03-01,,1,,next week", "Closed on: “next week” is not a date like 2025-03-31."),
    ("v-9,2025-03-01,bob,1,,", "Employee email: “bob” is not an email address."),
    (",2025-03-01,,1,,", "The external id is empty."),
    (f"{'x' * 256},2025-03-01,,1,,", "The external id is longer than 255 characters."),
    ("v-9,2025-03-01,,1,,,surprise", "It has a value in column 7, which has no name in the header."),
])
def test_each_kind_of_bad_row_is_named_with_its_reason(rich, cells, reason):
    parsed = parse_csv(rich, text(f"external_id,date,employee_email,amount,won,closed\n"
                                  f"v-1,2025-03-01,,1,,\n{cells}\n"))
    assert parsed.file_error is None
    assert parsed.problems == [(3, reason)]
    assert [r.external_id for r in parsed.records] == ["v-1"]


def test_a_row_with_several_bad_values_gets_one_line_with_every_reason(rich):
    parsed = parse_csv(rich, text("date,amount,won\nsoon,lots,maybe\n"))
    assert parsed.problems == [(2, "Date: “soon” is not a date like 2025-03-31. Amount: “lots” is not a number. "
                                   "Won: “maybe” is not yes or no (write yes, no, true, false, 1 or 0).")]


def test_an_unknown_employee_is_a_bad_row_when_the_data_source_reports_unknown_employees(rich):
    rich.settings = {"unknown_employees": "report"}
    db.session.commit()
    parsed = parse_csv(rich, text("date,employee_email\n2025-03-01,ANN@acme.test\n2025-03-01,zed@acme.test\n"))
    assert [r.employee_email for r in parsed.records] == ["ANN@acme.test"]
    assert parsed.problems == [(3, "Employee email: No employee has the email zed@acme.test (this data source "
                                   "does not create employees it does not know).")]


def test_every_row_of_a_repeated_external_id_is_bad(rich):
    parsed = parse_csv(rich, text("external_id,date\na,2025-03-01\nb,2025-03-02\na,2025-03-03\n"))
    reason = "The external id “a” is on rows 2, 4; each row needs its own."
    assert parsed.problems == [(2, reason), (4, reason)]
    assert [r.external_id for r in parsed.records] == ["b"]


def test_an_unknown_column_is_reported_once_as_a_problem_of_the_header(rich):
    parsed = parse_csv(rich, text("date,amout\n2025-03-01,1\n2025-03-02,2\n"))
    assert parsed.problems == [(1, "Column “amout” is not a column this data source knows, so its values are not "
                                   "imported. Its fields are: Amount, Won, Closed on, Note.")]
    assert len(parsed.records) == 2 and parsed.records[0].values == {}


def test_blank_lines_are_skipped_and_row_numbers_stay_those_of_the_file(rich):
    parsed = parse_csv(rich, text("date,amount\n2025-03-01,1\n\n,,\n2025-03-04,x\n"))
    assert parsed.rows == 2 and parsed.problems == [(5, "Amount: “x” is not a number.")]


@pytest.mark.parametrize("content, message", [
    (b"", "The file is empty."),
    (b"\n2025-03-01\n", "The first row of the file is empty: it must name the columns."),
    ("date,note\n2025-03-01,café\n".encode("latin-1"), "The file is not UTF-8 text."),
    (b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00\xb5U0#\xf4\x00\x00\x00", "The file is not UTF-8 text."),
    ("date,note\n".encode("utf-16-le"), "The file is not a CSV file: it holds binary data."),
    (b"date,note\n2025-03-01,a\x00b\n", "The file is not a CSV file: it holds binary data."),
    (b"external_id,amount\nv-1,3\n", "The file has no “date” column."),
    (b"date,amount\n", "The file has a header but no registrations."),
    (b"date,amount,Amount\n2025-03-01,1,1\n", "Columns 2 and 3 both hold Amount; keep one of them."),
    (b'date,note\n2025-03-01,"never closed\n', "The file is not a valid CSV file"),
])
def test_a_bad_file_gets_one_clear_message_and_no_records(rich, content, message):
    parsed = parse_csv(rich, text(content))
    assert parsed.file_error and parsed.file_error.startswith(message), parsed.file_error
    assert parsed.records == [] and parsed.problems == []


def test_a_file_over_the_row_limit_is_refused_as_a_whole(rich):
    parsed = parse_csv(rich, text("date\n2025-03-01\n2025-03-02\n2025-03-03\n"), max_rows=2)
    assert parsed.file_error == "The file has more than 2 rows. Split it into files of at most 2 rows."
    assert parsed.records == []


def test_rows_without_external_ids_get_ids_from_their_contents_that_the_same_file_gets_again(rich):
    content = "date,employee_email,amount\n2025-03-01,ann@acme.test,5\n2025-03-01,ann@acme.test,5\n2025-03-02,,5\n"
    first = [r.external_id for r in parse_csv(rich, text(content)).records]
    again = [r.external_id for r in parse_csv(rich, text(content)).records]
    assert first == again and len(set(first)) == 3 and all(i.startswith("csv-") for i in first)


# Importing

@both_databases
def test_import_none_refuses_a_file_with_a_bad_row_and_changes_nothing(app, world):
    before = registrations(world.calls)
    parsed = parse_csv(calls(world), text("external_id,date,amount\nn-1,2025-05-01,1\nn-2,someday,2\n"))
    with pytest.raises(ImportRefused, match="the file has 1 problem"):
        import_rows(calls(world), parsed.records, world.lead, NONE_IF_ERRORS, problems=parsed.problem_count)
    assert registrations(world.calls) == before and counter(world.calls) == 30
    assert audit_events("manual_import") == []


@both_databases
def test_import_valid_rows_writes_the_valid_ones_counts_and_audits_them(app, world):
    parsed = parse_csv(calls(world), text("external_id,date,employee_email,amount\n"
                                          "n-1,2025-05-01,ann@acme.test,100\nn-2,someday,,2\nC-1,2025-01-02,ben@acme.test,999\n"
                                          "C-2,2025-01-03,ann@acme.test,20\n"))
    report = import_rows(calls(world), parsed.records, world.lead, VALID_ROWS, problems=parsed.problem_count,
                         file_name="may.csv")
    assert (report.new, report.updated, report.unchanged) == (1, 1, 1)
    rows = registrations(world.calls)
    assert rows["n-1"] == (date(2025, 5, 1), world.ann, {"amount": 100})
    assert rows["C-1"][2] == {"amount": 999} and "n-2" not in rows
    assert counter(world.calls) == 31
    event, = audit_events("manual_import")
    assert (event.actor_id, event.count, event.outcome) == (world.lead, 2, "ok")
    assert event.details["mode"] == VALID_ROWS and event.details["file"] == "may.csv" and event.details["problems"] == 1


@both_databases
def test_uploading_the_same_file_again_changes_nothing(app, world):
    content = ("date,employee_email,amount\n2025-05-01,ann@acme.test,1\n2025-05-01,ann@acme.test,1\n"
               "2025-05-02,ben@acme.test,2.5\n")
    first = import_rows(calls(world), parse_csv(calls(world), text(content)).records, world.lead, NONE_IF_ERRORS)
    after_first = registrations(world.calls)
    again = import_rows(calls(world), parse_csv(calls(world), text(content)).records, world.lead, NONE_IF_ERRORS)
    assert (first.new, again.new, again.updated, again.unchanged) == (3, 0, 0, 3)
    assert registrations(world.calls) == after_first and counter(world.calls) == 33


@both_databases
def test_nothing_is_half_imported_when_a_write_fails(app, world, monkeypatch):
    real_upsert = manual_entry.upsert_records
    calls_made = []

    def fail_on_the_second_batch(*args, **kwargs):
        calls_made.append(1)
        if len(calls_made) == 2:
            raise OperationalError("INSERT", {}, Exception("disk I/O error"))
        return real_upsert(*args, **kwargs)

    monkeypatch.setattr(manual_entry, "BATCH_SIZE", 2)
    monkeypatch.setattr(manual_entry, "upsert_records", fail_on_the_second_batch)
    before = registrations(world.calls)
    parsed = parse_csv(calls(world), text("external_id,date,amount\nC-0,2025-01-01,77\nn-1,2025-05-01,1\n"
                                          "n-2,2025-05-02,2\nn-3,2025-05-03,3\n"))
    with pytest.raises(ImportFailed, match="none of them were imported"):
        import_rows(calls(world), parsed.records, world.lead, NONE_IF_ERRORS)
    assert len(calls_made) == 2  # the first batch was written, then rolled back
    assert registrations(world.calls) == before and counter(world.calls) == 30
    event, = audit_events("manual_import")
    assert (event.outcome, event.count, event.details["error"]) == ("failed", 0, "OperationalError")


def test_unknown_employees_are_created_as_imports_create_them(app, world):
    parsed = parse_csv(calls(world), text("date,employee_email,employee_name\n2025-05-01,Cat@acme.test,Cat Cole\n"))
    report = import_rows(calls(world), parsed.records, world.lead, NONE_IF_ERRORS)
    cat = db.session.scalars(sa.select(Employee).where(Employee.email == "cat@acme.test")).one()
    assert report.employees_created == 1 and (cat.name, cat.organization_id) == ("Cat Cole", world.acme)


def test_suppressed_external_ids_are_skipped_and_counted(app, world):
    db.session.add(Suppression(data_source_id=world.calls, external_id="n-1"))
    db.session.commit()
    parsed = parse_csv(calls(world), text("external_id,date\nn-1,2025-05-01\nn-2,2025-05-02\n"))
    report = import_rows(calls(world), parsed.records, world.lead, NONE_IF_ERRORS)
    assert (report.new, report.skipped_suppressed) == (1, 1) and "n-1" not in registrations(world.calls)


# The single registration

def test_add_registration_adds_one_with_a_new_external_id_and_audits_it(app, world):
    external_id = add_registration(calls(world), {"date": "2025-06-01", "employee_email": "ann@acme.test",
                                                  "amount": "42.5"}, world.lead)
    assert external_id.startswith("manual-")
    assert registrations(world.calls)[external_id] == (date(2025, 6, 1), world.ann, {"amount": 42.5})
    assert counter(world.calls) == 31 and audit_events("add_registration")[0].details["external_id"] == external_id


def test_add_registration_refuses_bad_values_and_a_taken_external_id(app, world):
    with pytest.raises(RegistrationRejected) as rejected:
        add_registration(calls(world), {"date": "", "amount": "ten"}, world.lead)
    assert rejected.value.errors == {"date": "The date is empty.", "amount": "“ten” is not a number."}
    with pytest.raises(RegistrationRejected) as rejected:
        add_registration(calls(world), {"date": "2025-06-01", "external_id": "C-3", "amount": "1"}, world.lead)
    assert "already exists" in rejected.value.errors["external_id"]
    assert counter(world.calls) == 30 and registrations(world.calls)["C-3"][2] == {"amount": 30}


# The pages

CSRF_FIELD = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def page_token(client, url):
    return CSRF_FIELD.search(client.get(url).get_data(as_text=True)).group(1)


def upload(client, data_source_id, content, mode=VALID_ROWS, token=True, name="calls.csv"):
    url = f"/data-sources/{data_source_id}/upload"
    data = {"if_bad_rows": mode, "csv_file": (io.BytesIO(content.encode() if isinstance(content, str) else content), name)}
    if token:
        data["csrf_token"] = page_token(client, url)
    return client.post(url, data=data, content_type="multipart/form-data")


@pytest.fixture
def lead(client, auth, world):
    auth.login("lead@acme.test")
    return client


BAD_ROW_FILE = "external_id,date,employee_email,amount\nn-1,2025-05-01,ann@acme.test,10\nn-2,2025-13-01,,5\nn-3,2025-05-03,,7\n"


def test_the_upload_page_has_a_labelled_file_input_the_two_choices_and_upload(lead, world):
    html = lead.get(f"/data-sources/{world.calls}/upload").get_data(as_text=True)
    assert '<label for="csv_file">CSV file</label>' in html and 'type="file"' in html
    assert "<legend>If some rows are bad</legend>" in html
    assert '<input accept=".csv,text/csv" id="csv_file" name="csv_file" type="file">' in html
    assert '<input checked id="if_bad_rows-0" name="if_bad_rows" required type="radio" value="none_if_errors">' in html
    assert '<label for="if_bad_rows-0">Import none of them</label>' in html
    assert '<label for="if_bad_rows-1">Import only the valid rows</label>' in html
    assert '<button type="submit" class="primary">Upload</button>' in html


def test_uploading_with_import_valid_rows_reports_counts_and_each_bad_row(lead, world):
    response = upload(lead, world.calls, BAD_ROW_FILE)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Imported 2 of 3 rows." in html and "<dt>New</dt><dd>2</dd>" in html
    assert "<dt>Bad rows, not imported</dt><dd>1</dd>" in html
    assert '<th scope="row">Row 3</th><td>Date: “2025-13-01” is not a date like 2025-03-31.</td>' in html
    assert counter(world.calls) == 32 and "32 registrations" in html


def test_uploading_with_import_none_refuses_names_the_bad_row_and_changes_nothing(lead, world):
    response = upload(lead, world.calls, BAD_ROW_FILE, mode=NONE_IF_ERRORS)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Nothing was imported, because the file has 1 problem." in html and "2 of its 3 rows are valid." in html
    assert '<th scope="row">Row 3</th>' in html and counter(world.calls) == 30


def test_uploading_a_bad_file_says_what_is_wrong_with_it(lead, world):
    response = upload(lead, world.calls, "date,amount\n".encode("utf-16"))
    assert response.status_code == 422
    assert "The file is not UTF-8 text." in response.get_data(as_text=True) and counter(world.calls) == 30


def test_an_upload_without_a_file_or_a_choice_is_refused(lead, world):
    url = f"/data-sources/{world.calls}/upload"
    response = lead.post(url, data={"csrf_token": page_token(lead, url)}, content_type="multipart/form-data")
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and "Choose a CSV file to upload." in html


def test_a_file_over_5_mb_gets_a_clear_message_and_imports_nothing(lead, world):
    url = f"/data-sources/{world.calls}/upload"
    content = b"date,amount\n" + b"2025-05-01,1\n" * (5 * 1024 * 1024 // 13 + 10)
    # Encoded in memory: the test client would spool a body this large to a file it never closes.
    boundary, body = encode_multipart({"csrf_token": page_token(lead, url), "if_bad_rows": VALID_ROWS,
                                       "csv_file": FileStorage(io.BytesIO(content), "big.csv")})
    response = lead.post(url, data=body, content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 413
    assert "The file is larger than 5 MB." in response.get_data(as_text=True) and counter(world.calls) == 30


def test_an_upload_without_the_csrf_token_is_refused(lead, world):
    response = upload(lead, world.calls, BAD_ROW_FILE, token=False)
    assert response.status_code == 400 and "CSRF" in response.get_data(as_text=True)
    assert counter(world.calls) == 30


def test_an_upload_waits_while_a_job_holds_the_data_source(lead, world):
    db.session.add(Job(id="busy-job", kind="delete_all", organization_id=world.acme, data_source_id=world.calls,
                       lock_key=f"data_source:{world.calls}"))
    db.session.commit()
    response = upload(lead, world.calls, BAD_ROW_FILE)
    assert response.status_code == 422 and "already running" in response.get_data(as_text=True)
    assert counter(world.calls) == 30


@pytest.mark.parametrize("path", ["upload", "registrations/new", "upload/template.csv"])
def test_viewers_may_not_add_or_upload(client, auth, world, path):
    auth.login("viewer@acme.test")
    assert client.get(f"/data-sources/{world.calls}/{path}").status_code == 403
    if path != "upload/template.csv":
        response = client.post(f"/data-sources/{world.calls}/{path}", headers=auth.htmx_headers(), data={})
        assert response.status_code == 403


@pytest.mark.parametrize("path", ["upload", "registrations/new", "upload/template.csv"])
def test_another_organizations_data_source_and_integrations_are_404(client, auth, world, path):
    auth.login("lead@globex.test")
    assert client.get(f"/data-sources/{world.calls}/{path}").status_code == 404
    assert client.get(f"/data-sources/{world.globex_deals}/{path}").status_code == 404


def test_support_staff_may_upload_to_any_organization(client, auth, world):
    auth.login("support@portal.test")
    assert upload(client, world.calls, BAD_ROW_FILE).status_code == 200 and counter(world.calls) == 32


def test_the_template_has_the_data_sources_columns(lead, world):
    response = lead.get(f"/data-sources/{world.calls}/upload/template.csv")
    assert response.get_data(as_text=True) == "external_id,date,employee_email,amount\r\n"
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"


def test_the_registration_form_has_an_input_per_field_and_lists_the_employees(lead, world):
    html = lead.get(f"/data-sources/{world.calls}/registrations/new").get_data(as_text=True)
    assert '<label for="date">Date</label>' in html and '<label for="field_0">Amount</label>' in html
    assert '<option value="ann@acme.test">Ann Able</option>' in html
    assert '<option value="ben@acme.test">Ben Baker (deactivated)</option>' in html


def test_the_registration_form_adds_a_registration_and_shows_the_registrations(lead, world):
    url = f"/data-sources/{world.calls}/registrations/new"
    response = lead.post(url, data={"csrf_token": page_token(lead, url), "date": "2025-06-01",
                                    "employee": "ann@acme.test", "external_id": "by-hand", "field_0": "5"},
                         follow_redirects=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "Registration by-hand added." in html and "31 registrations" in html
    assert registrations(world.calls)["by-hand"] == (date(2025, 6, 1), world.ann, {"amount": 5})


def test_the_registration_form_marks_each_bad_value_and_adds_nothing(lead, world):
    url = f"/data-sources/{world.calls}/registrations/new"
    response = lead.post(url, data={"csrf_token": page_token(lead, url), "date": "tomorrow", "employee": "",
                                    "external_id": "C-1", "field_0": "ten"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'aria-describedby="date-error"' in html and "“tomorrow” is not a date like 2025-03-31." in html
    assert 'id="field_0-error">“ten” is not a number.' in html and counter(world.calls) == 30
    response = lead.post(url, data={"csrf_token": page_token(lead, url), "date": "2025-06-01", "external_id": "C-1"})
    assert response.status_code == 422 and "already exists" in response.get_data(as_text=True)


def test_the_registration_form_refuses_an_employee_of_another_organization(lead, world):
    url = f"/data-sources/{world.calls}/registrations/new"
    response = lead.post(url, data={"csrf_token": page_token(lead, url), "date": "2025-06-01",
                                    "employee": "gus@globex.test"})
    assert response.status_code == 422 and counter(world.calls) == 30


def test_a_manual_data_sources_settings_link_to_both_pages_for_those_who_may_change_data(client, auth, world):
    auth.login("lead@acme.test")
    html = client.get(f"/data-sources/{world.calls}/settings").get_data(as_text=True)
    assert f'href="/data-sources/{world.calls}/registrations/new">Add registration</a>' in html
    assert f'href="/data-sources/{world.calls}/upload">Upload CSV</a>' in html
    assert "Upload CSV" not in client.get(f"/data-sources/{world.deals}/settings").get_data(as_text=True)
    auth.login("viewer@acme.test")
    assert "Upload CSV" not in client.get(f"/data-sources/{world.calls}/settings").get_data(as_text=True)
