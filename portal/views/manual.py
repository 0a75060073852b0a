"""Manual data sources: add a registration in a form, or upload a CSV file of them."""

import csv
import io

from flask import Blueprint, abort, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, RadioField, SelectChoice, SelectField, StringField
from wtforms.validators import InputRequired, Optional
from wtforms.widgets import DateInput, NumberInput

from portal.extensions import db
from portal.jobs import JobAlreadyRunning, exclusive_job_for
from portal.operations.api_tokens import create_token, live_tokens, revoke_token
from portal.operations.importing import ImportRefused
from portal.operations.manual_entry import (NONE_IF_ERRORS, VALID_ROWS, ImportFailed,
                                            RegistrationRejected, add_registration, import_rows, parse_csv,
                                            template_header)
from portal.views.access import require_change_permission, visible_data_source_or_404
from portal.views.data_sources import organization_employees
from portal.views.errors import dialog_refusal, message_response
from portal.views.rendering import render_page_or_fragment, wants_fragment

bp = Blueprint("manual", __name__, url_prefix="/data-sources/<int:data_source_id>")

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MODE_LABELS = {NONE_IF_ERRORS: "Import none of them", VALID_ROWS: "Import only the valid rows"}


@bp.url_value_preprocessor
def limit_upload_size(endpoint, values):
    """Cap the request body here: these run before every before_request, and CSRF protection reads the form."""
    request.max_content_length = MAX_UPLOAD_BYTES


@bp.before_request
@login_required
def require_login():
    """Adding registrations needs a logged-in team lead or support staff."""


@bp.errorhandler(413)
def upload_too_large(error):
    """A file over the limit gets a clear message, and nothing is read from it."""
    return message_response(f"The file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB. Split it into "
                            "smaller files and upload them one at a time.", 413, title="That file is too large")


class CsvUploadForm(FlaskForm):
    """A CSV file of registrations, and what to do if some of its rows are bad."""

    csv_file = FileField("CSV file", validators=[FileRequired("Choose a CSV file to upload.")],
                         render_kw={"accept": ".csv,text/csv"})
    if_bad_rows = RadioField("If some rows are bad", default=NONE_IF_ERRORS,
                             choices=[SelectChoice(value, label) for value, label in MODE_LABELS.items()],
                             validators=[InputRequired("Choose what to do if some rows are bad.")])


class RegistrationForm(FlaskForm):
    """One registration; registration_form() adds an input per field of the data source."""

    date = StringField("Date", widget=DateInput())
    employee = SelectField("Employee", validators=[Optional()])
    external_id = StringField("External id (optional)")


@bp.route("/registrations/new", methods=["GET", "POST"])
def add(data_source_id):
    """The form for one registration; a valid one is added and the registrations shown."""
    data_source = manual_data_source_or_404(data_source_id)
    require_change_permission()
    form, inputs = registration_form(data_source)
    error = None
    if form.validate_on_submit() and not (error := busy_message(data_source)):
        try:
            external_id = add_registration(data_source, form_values(form, inputs), actor_id=current_user.id)
        except RegistrationRejected as rejected:
            show_errors(form, inputs, rejected.errors)
        else:
            flash(f"Registration {external_id} added.", "success")
            return redirect(url_for("data_sources.show", data_source_id=data_source.id))
    status = 422 if form.errors or error else 200
    return render_template("manual/add.html", data_source=data_source, form=form, inputs=inputs, error=error), status


@bp.route("/upload", methods=["GET", "POST"])
def upload(data_source_id):
    """The CSV upload form; an upload is read, imported as the user chose, and reported row by row."""
    data_source = manual_data_source_or_404(data_source_id)
    require_change_permission()
    form = CsvUploadForm()
    if not form.validate_on_submit():
        return render_template("manual/upload.html", data_source=data_source, form=form), 422 if form.errors else 200
    if busy := busy_message(data_source):
        return render_template("manual/upload.html", data_source=data_source, form=form, error=busy), 422
    file_name = form.csv_file.data.filename or ""
    with io.TextIOWrapper(form.csv_file.data.stream, encoding="utf-8-sig", newline="") as stream:
        parsed = parse_csv(data_source, stream)
    try:
        report, refused = import_upload(data_source, parsed, form.if_bad_rows.data, file_name)
    except ImportFailed as failure:
        return message_response(str(failure), 500, title="Nothing was imported")
    return render_template("manual/upload.html", data_source=data_source, form=form, parsed=parsed, report=report,
                           refused=refused, file_name=file_name), 200 if report else 422


@bp.get("/upload/template.csv")
def csv_template(data_source_id):
    """An empty CSV file with this data source's columns, to fill in a spreadsheet."""
    data_source = manual_data_source_or_404(data_source_id)
    require_change_permission()
    out = io.StringIO()
    csv.writer(out).writerow(template_header(data_source))
    response = make_response(out.getvalue())
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = "attachment; filename=registrations.csv"
    return response


@bp.post("/api-tokens")
def create_api_token(data_source_id):
    """A new token for the JSON API, shown on this page once and never again."""
    data_source = manual_data_source_or_404(data_source_id)
    require_change_permission()
    row, token = create_token(data_source, current_user.id)
    response = make_response(render_template("manual/api_token.html", data_source=data_source, row=row, token=token,
                                             api_url=url_for("api.add_registrations", data_source_id=data_source.id,
                                                             _external=True)))
    response.headers["Cache-Control"] = "no-store"  # the token is on this page only
    return response


@bp.get("/api-tokens/<int:token_id>/revoke")
def confirm_revoke_api_token(data_source_id, token_id):
    """The dialog that confirms revoking a token."""
    data_source = manual_data_source_or_404(data_source_id)
    require_change_permission()
    token_row = next((t for t in live_tokens(data_source.id) if t.id == token_id), None)
    if token_row is None:
        return message_response("That token is not one of this data source's working tokens.", 404)
    return render_page_or_fragment("manual/revoke_token.html", "manual/_revoke_token.html",
                                   data_source=data_source, token_row=token_row)


@bp.post("/api-tokens/<int:token_id>/revoke")
def revoke_api_token(data_source_id, token_id):
    """Stop a token working at once."""
    data_source = manual_data_source_or_404(data_source_id)
    require_change_permission()
    reason = request.form.get("reason", "").strip()[:1000]
    if current_user.is_support and not reason:
        return dialog_refusal("Support staff must give a reason for revoking a token; it is kept in the audit log.")
    if not revoke_token(data_source, token_id, current_user.id, reason):
        return dialog_refusal("That token is not one of this data source's working tokens.")
    flash("The token is revoked: programs using it are refused from now on.", "success")
    settings = url_for("data_sources.settings", data_source_id=data_source.id)
    if wants_fragment():
        # htmx sent the dialog's form: load the settings again (an #anchor would only scroll).
        return "", 204, {"HX-Redirect": settings}
    return redirect(settings + "#api")


def manual_data_source_or_404(data_source_id):
    """The data source if the user may see it and it is manual (integrations import from their source)."""
    data_source = visible_data_source_or_404(data_source_id)
    if not data_source.is_manual:
        abort(404, description="Registrations are added by hand only to manual data sources; an integration "
                               "imports them from its source.")
    return data_source


def import_upload(data_source, parsed, mode, file_name):
    """(report, None) when the file's rows were imported; (None, why not) when the user's choice refused them."""
    if parsed.file_error:
        return None, None
    try:
        report = import_rows(data_source, parsed.records, current_user.id, mode, problems=parsed.problem_count,
                             file_name=file_name)
    except ImportRefused as refusal:
        return None, str(refusal)
    db.session.refresh(data_source)  # the page shows the new total
    return report, None


def busy_message(data_source):
    """Why nothing can be written now, if a destructive or import job holds the data source."""
    job = exclusive_job_for(data_source.id)
    return f"{JobAlreadyRunning(job)} Try again once it has finished." if job else None


def registration_form(data_source):
    """The registration form with one input per field, by its type, and [(field key, input)]."""
    class Form(RegistrationForm):
        pass

    for position, f in enumerate(data_source.fields):
        setattr(Form, f"field_{position}", _input_for(f))
    form = Form()
    form.employee.choices = [SelectChoice("", "No employee")] + [
        SelectChoice(e.email, e.name if e.active else f"{e.name} (deactivated)")
        for e in organization_employees(data_source.organization_id)]
    return form, [(f.key, form[f"field_{position}"]) for position, f in enumerate(data_source.fields)]


def form_values(form, inputs):
    """The form's values keyed like a CSV file's columns, as text."""
    values = {"date": form.date.data, "employee_email": form.employee.data, "external_id": form.external_id.data}
    for key, field in inputs:
        values[key] = ("yes" if field.data else "no") if isinstance(field, BooleanField) else (field.data or "")
    return values


def show_errors(form, inputs, errors):
    """Put the operation's messages beside the inputs they are about."""
    by_column = {"date": form.date, "employee_email": form.employee, "external_id": form.external_id, **dict(inputs)}
    for column, message in errors.items():
        by_column[column].errors.append(message)


def _input_for(f):
    """A form input for a field of a data source (values are checked by the operation, like a CSV's)."""
    if f.type == "boolean":
        return BooleanField(f.label)
    if f.type == "number":
        return StringField(f.label, widget=NumberInput(step="any"))
    if f.type == "date":
        return StringField(f.label, widget=DateInput())
    return StringField(f.label)
