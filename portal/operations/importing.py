"""Importing registrations: set-based, batched upserts by external id, so a rerun changes nothing."""

from dataclasses import asdict, dataclass, field

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite

from portal.connectors.base import ConnectorConfig
from portal.extensions import db
from portal.models import DataSource, Employee, Registration, Suppression, utcnow
from portal.operations import audit
from portal.operations.counting import adjust_registration_count
from portal.operations.deletion import revive
from portal.operations.statements import is_postgresql

BATCH_SIZE = 1000
MAX_REPORTED_FAILURES = 200


class ImportRefused(Exception):
    """An import that cannot start or run; the message is for the person who asked."""


@dataclass
class ImportReport:
    """What an import did, row by row in aggregate."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped_suppressed: int = 0
    failed: int = 0
    employees_created: int = 0
    revived: int = 0  # registrations in the restore window that the source still has, back again
    failures: list = field(default_factory=list)  # [{"external_id", "reason"}], the first ones
    unknown_employees: list = field(default_factory=list)

    @property
    def seen(self):
        """Records read from the source so far."""
        return self.new + self.updated + self.unchanged + self.skipped_suppressed + self.failed

    def fail(self, external_id, reason):
        """Count a record that could not be imported, keeping the first reasons."""
        self.failed += 1
        if len(self.failures) < MAX_REPORTED_FAILURES:
            self.failures.append({"external_id": external_id, "reason": reason})

    def as_dict(self):
        """JSON form, for the job's counts and the audit log."""
        return asdict(self)


class EmployeeDirectory:
    """The organization's employees by email; unknown ones are created or reported."""

    def __init__(self, organization_id, create_unknown):
        self.organization_id = organization_id
        self.create_unknown = create_unknown
        self.by_email = dict(db.session.execute(
            select(func.lower(Employee.email), Employee.id).where(Employee.organization_id == organization_id)).all())

    def resolve(self, email, name, report):
        """The employee id for an email (None when there is none, or it is unknown and only reported)."""
        if not email:
            return None
        key = email.strip().lower()
        if key in self.by_email:
            return self.by_email[key]
        if not self.create_unknown:
            if key not in report.unknown_employees and len(report.unknown_employees) < MAX_REPORTED_FAILURES:
                report.unknown_employees.append(key)
            return None
        employee = Employee(organization_id=self.organization_id, name=name or key, email=key)
        db.session.add(employee)
        db.session.flush()
        self.by_email[key] = employee.id
        report.employees_created += 1
        return employee.id


def config_of(data_source):
    """The connector configuration of a data source (secrets stay server-side)."""
    return ConnectorConfig(data_source.source_type, dict(data_source.settings or {}), dict(data_source.secrets or {}))


def import_period(data_source_id, period, *, reader, progress, actor_id=None, batch_size=BATCH_SIZE):
    """Read a period from the source and upsert it page by page; returns the report."""
    data_source = db.session.get(DataSource, data_source_id)
    if data_source is None:
        raise ImportRefused("The data source no longer exists.")
    report = ImportReport()
    directory = employee_directory(data_source)
    progress.update(0)
    for page in reader.read(config_of(data_source), period):
        for start in range(0, len(page), batch_size):
            upsert_records(data_source, page[start:start + batch_size], directory, report, period=period)
        progress.update(report.seen, cursor={"period": [period.start.isoformat(), period.end.isoformat()]})
        db.session.commit()
    audit.record("import", data_source, actor_id, count=report.new + report.updated,
                 details={"period": [period.start.isoformat(), period.end.isoformat()], **report.as_dict()})
    db.session.commit()
    return report


def employee_directory(data_source):
    """Employees of the data source's organization, creating unknown ones unless settings say report."""
    create = (data_source.settings or {}).get("unknown_employees", "create") != "report"
    return EmployeeDirectory(data_source.organization_id, create_unknown=create)


def upsert_records(data_source, records, directory, report, period=None):
    """Insert new and update changed registrations of one batch in one statement; skip suppressed."""
    latest = {}
    for record in records:
        if not record.external_id:
            report.fail("", "The record has no id.")
        elif period and not (period.start <= record.occurred_on <= period.end):
            report.fail(record.external_id, f"Its date {record.occurred_on} is outside the period.")
        else:
            latest[record.external_id] = record  # the source's last word on a repeated id wins
    if not latest:
        return
    ids = list(latest)
    suppressed = set(db.session.scalars(select(Suppression.external_id).where(
        Suppression.data_source_id == data_source.id, Suppression.external_id.in_(ids))))
    existing = {row.external_id: row for row in db.session.execute(
        select(Registration.external_id, Registration.occurred_on, Registration.employee_id, Registration.values)
        .where(Registration.data_source_id == data_source.id, Registration.external_id.in_(ids)))}
    rows, now = [], utcnow()
    for external_id, record in latest.items():
        if external_id in suppressed:
            report.skipped_suppressed += 1
            continue
        employee_id = directory.resolve(record.employee_email, record.employee_name, report)
        before = existing.get(external_id)
        if before is not None and (before.occurred_on, before.employee_id, before.values) == (
                record.occurred_on, employee_id, record.values):
            report.unchanged += 1
            continue
        if before is None:
            report.new += 1
        else:
            report.updated += 1
        rows.append({"data_source_id": data_source.id, "external_id": external_id, "occurred_on": record.occurred_on,
                     "employee_id": employee_id, "values": record.values, "updated_at": now})
    if rows:
        db.session.execute(_upsert_statement(), rows)
        adjust_registration_count(data_source.id, sum(1 for r in rows if r["external_id"] not in existing))
    report.revived += revive(data_source.id, [e for e in existing if e not in suppressed])


def _upsert_statement():
    """INSERT ... ON CONFLICT (data_source_id, external_id) DO UPDATE, in the session's dialect."""
    dialect = postgresql if is_postgresql() else sqlite
    statement = dialect.insert(Registration.__table__)
    return statement.on_conflict_do_update(
        index_elements=["data_source_id", "external_id"],
        set_={name: statement.excluded[name] for name in ("occurred_on", "employee_id", "values", "updated_at")},
    )
