"""The registry of connectors and what each declares per data source type (no Flask here)."""

import enum
from dataclasses import dataclass, field


class DeletionMechanism(enum.StrEnum):
    """How a deletion in the original database reaches the portal, if at all."""

    WEBHOOK = "webhook"
    RECONCILIATION = "reconciliation"
    NONE = "none"

    @property
    def label(self):
        """Words for people."""
        return {
            "webhook": "Webhook push from the source",
            "reconciliation": "Reconciled while importing a period",
            "none": "None",
        }[self.value]


@dataclass(frozen=True)
class SourceType:
    """One kind of data a connector reads, with its capabilities."""

    key: str
    label: str
    deletion: DeletionMechanism
    imports_period: bool = True
    max_span_days: int | None = None  # the longest period one import may ask the source for

    @property
    def deletes_automatically(self):
        """Whether a registration deleted at the source is deleted here too."""
        return self.deletion != DeletionMechanism.NONE


@dataclass(frozen=True)
class ConnectorInfo:
    """A connector's declaration: its name, where data comes from, its source types."""

    key: str
    label: str
    source_label: str
    source_types: dict = field(default_factory=dict)

    @property
    def is_integration(self):
        """Manual data sources have nothing at a source to re-import from."""
        return self.key != "manual"


def _declare(key, label, source_label, *types):
    return ConnectorInfo(key, label, source_label, {t.key: t for t in types})


CONNECTORS = {
    c.key: c
    for c in (
        _declare(
            "manual", "Manual", "the portal",
            SourceType("manual", "Manual entries", DeletionMechanism.NONE, imports_period=False),
        ),
        _declare(
            "sql", "SQL database", "the original database",
            SourceType("table", "Table or query", DeletionMechanism.RECONCILIATION),
        ),
        _declare(
            "pipedrive", "Pipedrive", "Pipedrive",
            SourceType("deals", "Deals", DeletionMechanism.WEBHOOK),
            SourceType("activities", "Activities", DeletionMechanism.NONE),
        ),
    )
}


def reader_for(connector_key):
    """The object that reads a connector's source (None for manual data sources)."""
    if connector_key == "pipedrive":
        from portal.connectors.pipedrive import PipedriveReader

        return PipedriveReader()
    if connector_key == "sql":
        from portal.connectors.sql import SqlReader

        return SqlReader()
    return None


def connector_info(key):
    """The declaration of a connector; KeyError for an unknown one."""
    return CONNECTORS[key]


def source_type_of(connector_key, source_type_key):
    """The declared capabilities of one connector's data source type."""
    return CONNECTORS[connector_key].source_types[source_type_key]
