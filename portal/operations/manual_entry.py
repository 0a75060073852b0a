"""Manual data sources: registrations typed into a form or uploaded as a CSV file, all or nothing.

A CSV file names its columns in its first row. Understood, case-insensitively, with spaces or
underscores alike:

- ``date`` (required): the day the registration happened, as an ISO date (2025-03-31);
- ``external_id`` (optional): the registration's id in this data source. A row with the id of an
  existing registration updates it. Without the column, each row gets an id made from its
  contents (and how many identical rows came before it), so uploading the same file again
  changes nothing; a row edited in such a file is a new registration, so give the file ids to
  correct rows. With the column, every row needs an id of its own;
- ``employee_email`` (optional) and ``employee_name`` (optional, used when an unknown employee is
  created, if the data source's settings allow that, as imports do);
- one column per field of the data source, named by its key or its label.

Row numbers are a spreadsheet's: the header is row 1, the first registration row 2.
"""

import csv
import hashlib
import itertools
import json
import math
import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import date
from typing import NamedTuple

from sqlalchemy import exists, or_, select
from sqlalchemy.exc import SQLAlchemyError

from portal.connectors.base import SourceRecord
from portal.extensions import db
from portal.models import Registration, Suppression
from portal.operations import audit
from portal.operations.importing import BATCH_SIZE, ImportRefused, ImportReport, employee_directory, upsert_records

MAX_ROWS = 50_000
MAX_REPORTED_PROBLEMS = 1000
NONE_IF_ERRORS = "none_if_errors"
VALID_ROWS = "valid_rows"
IMPORT_MODES = (NONE_IF_ERRORS, VALID_ROWS)
EXTERNAL_ID_MAX_LENGTH = 255  # the length of Registration.external_id
DELIMITERS = (",", ";", "\t")  # spreadsheets set to a decimal comma save with semicolons
BINARY = "The file is not a CSV file: it holds binary data."

STANDARD_COLUMNS = {"external_id": "External id", "date": "Date", "employee_email": "Employee email",
                    "employee_name": "Employee name"}
TRUE_WORDS, FALSE_WORDS = {"yes", "true", "1"}, {"no", "false", "0"}
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
INTEGER = re.compile(r"[+-]?\d+")
DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


class RowProblem(NamedTuple):
    """Why one row of a file (row 1 is its header) was not imported."""

    row: int
    reason: str


@dataclass
class ParsedCsv:
    """What a CSV file holds: valid records, and the rows (or the file) that are not right."""

    records: list = field(default_factory=list)
    problems: list = field(default_factory=list)  # RowProblem, in row order, the first MAX_REPORTED_PROBLEMS
    problem_count: int = 0  # every problem, even those not kept in the list
    rows: int = 0  # registration rows read (blank lines are not rows)
    file_error: str | None = None  # the file as a whole cannot be read: nothing in it counts

    def problem(self, row, reason):
        """Count a problem, keeping the first ones to report."""
        self.problem_count += 1
        if len(self.problems) < MAX_REPORTED_PROBLEMS:
            self.problems.append(RowProblem(row, reason))


class RegistrationRejected(Exception):
    """A registration from the form that cannot be added; errors maps each input to its message."""

    def __init__(self, errors):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


class ImportFailed(Exception):
    """Writing the rows failed, so none of them were imported; the message is for the user."""


def parse_csv(data_source, text_stream, max_rows=MAX_ROWS):
    """Read a CSV text stream into records for the data source, naming each bad row and why."""
    parsed = ParsedCsv()
    try:
        _parse(data_source, text_stream, max_rows, parsed)
    except UnicodeDecodeError:
        return ParsedCsv(file_error="The file is not UTF-8 text. If it is a spreadsheet, save it as "
                                    "“CSV UTF-8 (comma delimited)” and upload that file.")
    if parsed.file_error:
        return ParsedCsv(file_error=parsed.file_error)
    return parsed


def import_rows(data_source, records, actor_id, mode, *, problems=0, file_name=""):
    """Write the records in one transaction and audit it; refused if the file had problems and mode says none."""
    if mode not in IMPORT_MODES:
        raise ValueError(f"Unknown import mode {mode!r}.")
    if problems and mode == NONE_IF_ERRORS:
        raise ImportRefused(f"Nothing was imported, because the file has {_count(problems, 'problem')}. Fix "
                            "them and upload it again, or choose to import only the valid rows.")
    report = ImportReport()
    try:
        directory = employee_directory(data_source)
        for start in range(0, len(records), BATCH_SIZE):
            upsert_records(data_source, records[start:start + BATCH_SIZE], directory, report)
        audit.record("manual_import", data_source, actor_id, count=report.new + report.updated,
                     details={"mode": mode, "file": file_name, "problems": problems, **report.as_dict()})
        db.session.commit()
    except SQLAlchemyError as error:
        db.session.rollback()
        _record_failure(data_source, actor_id, mode, file_name, len(records), error)
        raise ImportFailed("Writing the rows failed, so none of them were imported. Try again later.") from error
    except Exception:
        db.session.rollback()
        raise
    return report


def add_registration(data_source, values, actor_id):
    """Add one registration from the form's raw values (keyed like CSV columns); returns its external id."""
    converter = RowConverter(data_source)
    record, errors = converter.convert(values)
    external_id = (values.get("external_id") or "").strip()
    if not errors and external_id and _taken(data_source.id, external_id):
        errors["external_id"] = (f"A registration with external id “{external_id}” already exists in this "
                                 "data source, or among its deleted registrations.")
    if errors:
        raise RegistrationRejected(errors)
    record = replace(record, external_id=external_id or f"manual-{uuid.uuid4().hex[:16]}")
    report = ImportReport()
    try:
        upsert_records(data_source, [record], converter.directory, report)
        audit.record("add_registration", data_source, actor_id, count=1,
                     details={"external_id": record.external_id, "employees_created": report.employees_created})
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return record.external_id


API_ITEM_KEYS = ("external_id", "date", "employee_email", "employee_name", "values")


def records_from_json(data_source, items):
    """Records from the JSON API's registrations, and [{index, external_id, reason}] for the bad ones.

    Each item is an object: external_id (required: what makes sending it again change nothing),
    date, optionally employee_email and employee_name, and values, an object of field key ->
    number, text, true/false or null. Values are checked by the data source's field types, as a
    CSV file's cells are.
    """
    converter = RowConverter(data_source)
    fields = {f.key for f in converter.fields}
    rows = []  # (index, external id, record or None, reasons), as a CSV file's rows are read
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            rows.append((index, "", None, ["A registration must be a JSON object."]))
            continue
        reasons, raw, record = [], {}, None
        unknown = sorted(set(item) - set(API_ITEM_KEYS))
        if unknown:
            reasons.append(f"Unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; a "
                           f"registration has {', '.join(API_ITEM_KEYS)}.")
        external_id = item.get("external_id")
        if isinstance(external_id, bool) or not isinstance(external_id, (str, int)) or not str(external_id).strip():
            reasons.append("It needs an external_id (text or a whole number), so that sending it again "
                           "changes nothing.")
            external_id = ""
        external_id = str(external_id).strip()
        raw["external_id"] = external_id
        for key in ("date", "employee_email", "employee_name"):
            value = item.get(key)
            if value is not None and not isinstance(value, str):
                reasons.append(f"{key} must be text.")
            raw[key] = value or ""
        values = item.get("values", {})
        if not isinstance(values, dict):
            reasons.append("values must be an object of field key -> value.")
            values = {}
        for key, value in values.items():
            if key not in fields:
                reasons.append(f"“{_shown(str(key))}” is not a field of this data source; its fields are: "
                               f"{', '.join(sorted(fields)) or 'none'}.")
            elif isinstance(value, (dict, list)):
                reasons.append(f"The value of {key} must be a number, text, true, false or null.")
            else:
                raw[key] = _json_cell(value)
        if not reasons:
            record, errors = converter.convert(raw)
            reasons += [_with_label(converter.label_of(column), message) for column, message in errors.items()]
        rows.append((index, external_id, record, reasons))
    _report_duplicate_ids(rows, where="at indexes", each="each registration")
    records = [record for _, _, record, reasons in rows if not reasons]
    problems = [{"index": index, "external_id": external_id or None, "reason": " ".join(reasons)}
                for index, external_id, _, reasons in rows if reasons]
    return records, problems


def _json_cell(value):
    """A JSON value as the text a CSV cell would hold."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return str(value)


def template_header(data_source):
    """The header row of a CSV file for this data source, for people to fill in."""
    return ["external_id", "date", "employee_email"] + [f.key for f in data_source.fields]


class RowConverter:
    """Turns one row's raw strings, keyed by column, into a SourceRecord by the data source's field types."""

    def __init__(self, data_source):
        self.fields = list(data_source.fields)
        # Read here, never written: the import's own directory creates unknown employees.
        self.directory = employee_directory(data_source)

    def convert(self, raw):
        """The record (its external id as given, maybe empty) and {column: message} for each bad value."""
        errors, values = {}, {}
        occurred_on = _date(raw.get("date"), errors, "date", "The date")
        email = (raw.get("employee_email") or "").strip()
        if email and not EMAIL.fullmatch(email):
            errors["employee_email"] = f"“{_shown(email)}” is not an email address."
        elif email and not self.directory.create_unknown and email.lower() not in self.directory.by_email:
            errors["employee_email"] = (f"No employee has the email {_shown(email)} (this data source does not "
                                        "create employees it does not know).")
        external_id = (raw.get("external_id") or "").strip()
        if len(external_id) > EXTERNAL_ID_MAX_LENGTH:
            errors["external_id"] = f"The external id is longer than {EXTERNAL_ID_MAX_LENGTH} characters."
        for f in self.fields:
            text = (raw.get(f.key) or "").strip()
            if text:
                value = _field_value(f, text, errors)
                if value is not None:
                    values[f.key] = value
        if errors:
            return None, errors
        return SourceRecord(external_id=external_id, occurred_on=occurred_on, values=values,
                            employee_email=email or None,
                            employee_name=(raw.get("employee_name") or "").strip() or None), {}

    def label_of(self, column):
        """How a column is named in messages."""
        for f in self.fields:
            if f.key == column:
                return f.label
        return STANDARD_COLUMNS.get(column, column)


def _parse(data_source, text_stream, max_rows, parsed):
    """Fill `parsed` from the stream (raises UnicodeDecodeError and csv.Error for a file that is not CSV)."""
    first_line = text_stream.readline().lstrip("\ufeff")
    if not first_line.strip():
        parsed.file_error = "The file is empty." if not first_line else "The first row of the file is empty: it must name the columns."
        return
    if "\x00" in first_line:
        parsed.file_error = BINARY
        return
    delimiter = max(DELIMITERS, key=first_line.count)  # a comma wins a tie
    reader = csv.reader(itertools.chain([first_line], text_stream), delimiter=delimiter, strict=True)
    try:
        rows = _read_rows(data_source, reader, max_rows, parsed)
    except csv.Error as error:
        parsed.file_error = f"The file is not a valid CSV file: {error} (line {reader.line_num})."
        return
    if parsed.file_error:
        return
    if not rows:
        parsed.file_error = "The file has a header but no registrations."
        return
    _report_duplicate_ids(rows)
    for number, _, record, reasons in rows:
        if reasons:
            parsed.problem(number, " ".join(reasons))
        else:
            parsed.records.append(record)


def _read_rows(data_source, reader, max_rows, parsed):
    """[(row number, external id as given, record or None, reasons)] of the file's rows."""
    converter = RowConverter(data_source)
    columns = _map_header(next(reader), converter, parsed)  # {cell index: column, or None when unknown}
    if parsed.file_error:
        return []
    rows = []
    for number, cells in enumerate(reader, start=2):
        if not any(cell.strip() for cell in cells):
            continue
        if "\x00" in "".join(cells):
            parsed.file_error = BINARY
            return []
        parsed.rows += 1
        if parsed.rows > max_rows:
            parsed.file_error = f"The file has more than {max_rows:,} rows. Split it into files of at most {max_rows:,} rows."
            return []
        rows.append(_read_row(number, cells, columns, converter))
    return rows if "external_id" in columns.values() else _with_generated_ids(rows)


def _map_header(header, converter, parsed):
    """{cell index: column or None} for the header's named cells; unknown columns are problems of row 1."""
    by_name = {_name(column): column for column in STANDARD_COLUMNS}
    for f in converter.fields:
        by_name.setdefault(_name(f.label), f.key)
        by_name.setdefault(_name(f.key), f.key)
    columns, seen = {}, {}
    for index, cell in enumerate(header):
        name = _name(cell)
        if not name:
            continue  # a nameless column is fine while it is empty; a value in it is a problem of its row
        column = by_name.get(name)
        if column is None:
            fields = ", ".join(f.label for f in converter.fields) or "none"
            columns[index] = None
            parsed.problem(1, f"Column “{_shown(cell.strip())}” is not a column this data source knows, so its "
                              f"values are not imported. Its fields are: {fields}.")
        elif column in seen:
            parsed.file_error = (f"Columns {seen[column] + 1} and {index + 1} both hold "
                                 f"{converter.label_of(column)}; keep one of them.")
            return columns
        else:
            columns[index], seen[column] = column, index
    if "date" not in seen:
        optional = ", ".join(["external_id", "employee_email"] + [f.key for f in converter.fields])
        parsed.file_error = ("The file has no “date” column. Its first row must name the columns: date, and "
                             f"any of {optional}.")
    return columns


def _read_row(number, cells, columns, converter):
    """(row number, external id, record or None, reasons) for one row of cells."""
    reasons = [f"It has a value in column {i + 1}, which has no name in the header."
               for i, cell in enumerate(cells) if i not in columns and cell.strip()][:1]
    raw = {column: (cells[index] if index < len(cells) else "") for index, column in columns.items() if column}
    if "external_id" in raw and not raw["external_id"].strip():
        reasons.append("The external id is empty.")
    record, errors = converter.convert(raw)
    reasons += [_with_label(converter.label_of(column), message) for column, message in errors.items()]
    return number, raw.get("external_id", "").strip(), record, reasons


def _with_generated_ids(rows):
    """Give each valid row an id from its contents, so the same file imported again matches itself."""
    occurrences, result = {}, []
    for number, _, record, reasons in rows:
        if record is None:
            result.append((number, "", record, reasons))
            continue
        content = json.dumps([record.occurred_on.isoformat(), (record.employee_email or "").lower(), record.values],
                             sort_keys=True, default=str)
        occurrences[content] = occurrences.get(content, 0) + 1
        digest = hashlib.sha256(f"{content}#{occurrences[content]}".encode()).hexdigest()[:20]
        result.append((number, "", replace(record, external_id=f"csv-{digest}"), reasons))
    return result


def _report_duplicate_ids(rows, where="on rows", each="each row"):
    """Every row of an external id that more than one row has is bad: which one is right is not ours to guess."""
    numbers = {}
    for number, external_id, _, _ in rows:
        if external_id:
            numbers.setdefault(external_id, []).append(number)
    for number, external_id, _, reasons in rows:
        if len(numbers.get(external_id, ())) > 1:
            others = ", ".join(str(n) for n in numbers[external_id])
            reasons.append(f"The external id “{_shown(external_id)}” is {where} {others}; {each} needs its own.")


def _field_value(f, text, errors):
    """The value of a field's cell by the field's type (None, with an error, when it is not right)."""
    if f.type == "number":
        if INTEGER.fullmatch(text):
            return int(text)
        number = float(text) if DECIMAL.fullmatch(text) else math.nan
        if math.isfinite(number):
            return number
        hint = " Write decimals with a dot and no thousands separators." if "," in text else ""
        errors[f.key] = f"“{_shown(text)}” is not a number.{hint}"
    elif f.type == "boolean":
        if text.lower() in TRUE_WORDS:
            return True
        if text.lower() in FALSE_WORDS:
            return False
        errors[f.key] = f"“{_shown(text)}” is not yes or no (write yes, no, true, false, 1 or 0)."
    elif f.type == "date":
        day = _date(text, errors, f.key, f.label)
        return day.isoformat() if day else None
    else:
        return text
    return None


def _date(text, errors, column, what):
    """An ISO date, or None with an error."""
    text = (text or "").strip()
    if not text:
        errors[column] = f"{what} is empty."
        return None
    try:
        if ISO_DATE.fullmatch(text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    errors[column] = f"“{_shown(text)}” is not a date like 2025-03-31."
    return None


def _taken(data_source_id, external_id):
    """Whether a registration (live or deleted) or a suppression already has this external id."""
    registration = exists().where(Registration.data_source_id == data_source_id,
                                  Registration.external_id == external_id)
    suppression = exists().where(Suppression.data_source_id == data_source_id,
                                 Suppression.external_id == external_id)
    return db.session.scalar(select(or_(registration, suppression)))


def _record_failure(data_source, actor_id, mode, file_name, rows, error):
    """Audit an import whose write failed and was rolled back."""
    audit.record("manual_import", data_source, actor_id, count=0, outcome="failed",
                 reason="Writing the rows failed; none were imported.",
                 details={"mode": mode, "file": file_name, "rows": rows, "error": type(error).__name__})
    db.session.commit()


def _name(text):
    """A column name as the header is matched: case, spaces and underscores do not matter."""
    return " ".join(text.replace("_", " ").lower().split())


def _with_label(label, message):
    """'Amount: “x” is not a number.' (a message that names its subject stays as it is)."""
    return message if message.startswith(("The ", f"{label} ")) else f"{label}: {message}"


def _shown(text, limit=60):
    """A value as quoted in a message, shortened."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _count(n, word):
    """'1 problem', '3 problems'."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"
