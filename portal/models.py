"""The database tables: tenants, people, data sources, registrations, jobs and the audit log."""

import enum
from datetime import date, datetime, timezone

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from portal.extensions import db

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets a real bigint.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow():
    """Current time in UTC, stored naive so SQLite and PostgreSQL compare alike."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Role(enum.StrEnum):
    """What a user may do: team leads change data, viewers look, support helps everyone."""

    LEAD = "lead"
    VIEWER = "viewer"
    SUPPORT = "support"


class JobStatus(enum.StrEnum):
    """Lifecycle of a background job's durable record."""

    QUEUED = "queued"
    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELED = "canceled"


ACTIVE_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.STARTED)


def _string_enum(enum_class):
    """Store an enum's values (not its names) in a plain string column."""
    return Enum(enum_class, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e])


class Organization(db.Model):
    """A tenant: nobody but support staff sees another organization's data."""

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class User(UserMixin, db.Model):
    """Someone who logs in: a member of one organization, or support staff across all."""

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int | None] = mapped_column(
        ForeignKey("organization.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(_string_enum(Role))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    organization: Mapped[Organization | None] = relationship()

    def set_password(self, password):
        """Store a salted hash of the password, never the password."""
        self.password_hash = generate_password_hash(password)

    def check_password(self, password):
        """Whether the password matches the stored hash."""
        return check_password_hash(self.password_hash, password)

    @property
    def is_support(self):
        """Support staff can open every organization."""
        return self.role == Role.SUPPORT

    @property
    def can_change_data(self):
        """Team leads and support staff may delete, restore and import; viewers may not."""
        return self.role in (Role.LEAD, Role.SUPPORT)

    def can_see(self, organization_id):
        """Whether this user may see the given organization's data."""
        return self.is_support or self.organization_id == organization_id


class Employee(db.Model):
    """A person whose work registrations record; deactivated, never deleted."""

    __table_args__ = (UniqueConstraint("organization_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organization.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    deactivated_at: Mapped[datetime | None] = mapped_column(DateTime)

    organization: Mapped[Organization] = relationship()


class DataSource(db.Model):
    """A manual data source or an integration (connector + data source type)."""

    __table_args__ = (UniqueConstraint("organization_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organization.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    connector: Mapped[str] = mapped_column(String(50))
    source_type: Mapped[str] = mapped_column(String(50))
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    # Credentials for the connector: read by connectors, never rendered in a page.
    secrets: Mapped[dict] = mapped_column(JSON, default=dict)
    # Maintained by the operations that add or remove registrations, so no page counts rows.
    registration_count: Mapped[int] = mapped_column(BigInteger, default=0)
    # Set when "delete data source" is confirmed; the data source disappears from pages.
    pending_deletion: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    organization: Mapped[Organization] = relationship()
    fields: Mapped[list["Field"]] = relationship(
        order_by="Field.position", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def is_manual(self):
        """Manual data sources hold what people enter; integrations import from elsewhere."""
        return self.connector == "manual"

    @property
    def kind(self):
        """'manual' or 'integration'."""
        return "manual" if self.is_manual else "integration"


class Field(db.Model):
    """A column that a data source's registrations carry."""

    __table_args__ = (UniqueConstraint("data_source_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    data_source_id: Mapped[int] = mapped_column(
        ForeignKey("data_source.id", ondelete="CASCADE"), index=True
    )
    key: Mapped[str] = mapped_column(String(100))
    label: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(20), default="text")
    position: Mapped[int] = mapped_column(Integer, default=0)


class Registration(db.Model):
    """One row of a data source."""

    __table_args__ = (
        UniqueConstraint("data_source_id", "external_id"),
        # Keyset pagination walks (occurred_on, id) within one data source.
        Index("ix_registration_page", "data_source_id", "occurred_on", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    data_source_id: Mapped[int] = mapped_column(
        ForeignKey("data_source.id", ondelete="CASCADE")
    )
    external_id: Mapped[str] = mapped_column(String(255))
    employee_id: Mapped[int | None] = mapped_column(ForeignKey("employee.id"), index=True)
    occurred_on: Mapped[date] = mapped_column(Date)
    values: Mapped[dict] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    employee: Mapped[Employee | None] = relationship()


class DeletionBatch(db.Model):
    """One deletion: its registrations wait in the restore window until restored or purged."""

    id: Mapped[int] = mapped_column(primary_key=True)
    data_source_id: Mapped[int] = mapped_column(
        ForeignKey("data_source.id", ondelete="CASCADE"), index=True
    )
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL"), index=True
    )
    # selected | all | source (deleted at the source)
    kind: Mapped[str] = mapped_column(String(20))
    # deleted | restored | purged
    status: Mapped[str] = mapped_column(String(20), default="deleted")
    selection: Mapped[dict] = mapped_column(JSON, default=dict)
    reason: Mapped[str] = mapped_column(Text, default="")
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    first_on: Mapped[date | None] = mapped_column(Date)
    last_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    restored_at: Mapped[datetime | None] = mapped_column(DateTime)
    purged_at: Mapped[datetime | None] = mapped_column(DateTime)
    # A batch deleted as "all matching a filter" hides by that filter, without a row per
    # registration: every registration of the data source up to ceiling_id that matches
    # the period and employee below, except its exceptions, is in the restore window.
    ceiling_id: Mapped[int | None] = mapped_column(BigInteger)
    hides_from: Mapped[date | None] = mapped_column(Date)
    hides_to: Mapped[date | None] = mapped_column(Date)
    hides_employee_id: Mapped[int | None] = mapped_column(Integer)

    created_by: Mapped["User | None"] = relationship()

    @property
    def hides_by_filter(self):
        """Whether the batch hides by its filter rather than by hidden_registration rows."""
        return self.ceiling_id is not None


class HiddenRegistration(db.Model):
    """A registration in the restore window: it stays where it is, hidden from every read.

    Deleting writes one narrow row here instead of moving the registration, so a delete
    costs about what a raw DELETE does, restoring is deleting these rows, and the purge
    removes the registration itself. No foreign keys: the operations that delete data
    sources and batches remove these rows themselves, and the checks would slow deletes.
    """

    registration_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    batch_id: Mapped[int] = mapped_column(Integer, index=True)


class BatchException(db.Model):
    """A registration a filter batch would hide but does not: unticked, or imported back since."""

    batch_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    registration_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)


class Suppression(db.Model):
    """An external id that imports skip, so a deleted registration stays deleted."""

    __table_args__ = (UniqueConstraint("data_source_id", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    data_source_id: Mapped[int] = mapped_column(
        ForeignKey("data_source.id", ondelete="CASCADE")
    )
    external_id: Mapped[str] = mapped_column(String(255))
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ApiToken(db.Model):
    """A secret that lets a program send registrations to one manual data source's JSON API.

    Only a SHA-256 digest of the token is kept (the token itself is shown once, when it is
    created); `prefix` is its first characters, so people can tell their tokens apart.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    data_source_id: Mapped[int] = mapped_column(ForeignKey("data_source.id", ondelete="CASCADE"), index=True)
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)

    created_by: Mapped[User | None] = relationship()


class Job(db.Model):
    """Durable record of a background job, keyed by its RQ job id; the truth about it."""

    # The Jobs page lists an organization's most recent jobs.
    __table_args__ = (Index("ix_job_organization_recent", "organization_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(50))
    organization_id: Mapped[int | None] = mapped_column(
        ForeignKey("organization.id", ondelete="CASCADE"), index=True
    )
    data_source_id: Mapped[int | None] = mapped_column(
        ForeignKey("data_source.id", ondelete="SET NULL"), index=True
    )
    requested_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL"), index=True
    )
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[JobStatus] = mapped_column(
        _string_enum(JobStatus), default=JobStatus.QUEUED
    )
    progress_done: Mapped[int] = mapped_column(BigInteger, default=0)
    progress_total: Mapped[int | None] = mapped_column(BigInteger)
    counts: Mapped[dict] = mapped_column(JSON, default=dict)
    # Where a resumed run picks up, written in the same transaction as each chunk.
    cursor: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Set when someone cancels a running job; the job stops at its next checkpoint.
    cancel_requested_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Set to "data_source:<id>" while an exclusive job is queued or running: the unique
    # constraint makes "one destructive job per data source" hold across every process.
    lock_key: Mapped[str | None] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)

    data_source: Mapped[DataSource | None] = relationship()
    requested_by: Mapped[User | None] = relationship()

    @property
    def is_active(self):
        """Queued or running: the progress partial keeps polling."""
        return self.status in ACTIVE_JOB_STATUSES

    @property
    def percent(self):
        """Progress as a whole percentage, when the total is known."""
        if not self.progress_total:
            return 100 if self.status == JobStatus.FINISHED else 0
        return min(100, round(100 * self.progress_done / self.progress_total))


class AuditEvent(db.Model):
    """Who did what to which data source, when, to how many rows, with what outcome."""

    # The audit log pages by (organization, id) and (data source, id), newest first.
    __table_args__ = (Index("ix_audit_event_organization_page", "organization_id", "id"),
                      Index("ix_audit_event_data_source_page", "data_source_id", "id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    organization_id: Mapped[int | None] = mapped_column(
        ForeignKey("organization.id", ondelete="CASCADE"), index=True
    )
    actor_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL"), index=True
    )
    data_source_id: Mapped[int | None] = mapped_column(
        ForeignKey("data_source.id", ondelete="SET NULL"), index=True
    )
    # Kept so the log still reads well after a data source is deleted.
    data_source_name: Mapped[str] = mapped_column(String(200), default="")
    action: Mapped[str] = mapped_column(String(50))
    count: Mapped[int | None] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(String(20), default="ok")
    reason: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict] = mapped_column(JSON, default=dict)

    actor: Mapped[User | None] = relationship()
