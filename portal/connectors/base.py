"""What every connector reads and returns; plain Python, no Flask, no database models."""

from dataclasses import dataclass, field
from datetime import date
from typing import Iterator, Protocol


@dataclass(frozen=True)
class Period:
    """An inclusive range of days to import."""

    start: date
    end: date


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One registration as the original source has it, mapped to the portal's shape."""

    external_id: str
    occurred_on: date
    values: dict
    employee_email: str | None = None  # matched to the organization's employees by email
    employee_name: str | None = None  # used when an unknown employee is created


@dataclass(frozen=True)
class ConnectorConfig:
    """A data source's connector configuration: public settings and server-side secrets."""

    source_type: str
    settings: dict = field(default_factory=dict)
    secrets: dict = field(default_factory=dict)


class ConnectorError(Exception):
    """The source could not be read; the message is safe to show (never contains secrets)."""


class Reader(Protocol):
    """A connector's reading side."""

    def read(self, config: ConnectorConfig, period: Period) -> Iterator[list[SourceRecord]]:
        """Yield the period's records page by page (bounded memory)."""

    def deleted_ids(self, config: ConnectorConfig, period: Period) -> Iterator[list[str]]:
        """Yield external ids the source lists as deleted in the period (may yield nothing)."""
