"""Which connector and data source type deletes registrations automatically, and searching that.

Generated from the connectors' declarations only, so the lookup page cannot drift from the code.
"""

from dataclasses import dataclass

from portal.connectors import CONNECTORS, ConnectorInfo, SourceType


@dataclass(frozen=True)
class Capability:
    """One line of the lookup table: a connector's data source type and how deletions reach here."""

    connector: ConnectorInfo
    source_type: SourceType

    @property
    def applies(self):
        """Manual data sources have no original database whose deletions could reach here."""
        return self.connector.is_integration

    @property
    def supported(self):
        """Whether a registration deleted at the source is deleted here too."""
        return self.source_type.deletes_automatically

    @property
    def status(self):
        """'Supported', 'Not supported', or 'Not applicable' for manual data sources."""
        if not self.applies:
            return "Not applicable"
        return "Supported" if self.supported else "Not supported"

    @property
    def mechanism(self):
        """The declared mechanism (webhook, reconciliation, none)."""
        return self.source_type.deletion

    def matches(self, words):
        """Every word is found in the connector's or the data source type's label."""
        labels = (self.connector.label.casefold(), self.source_type.label.casefold())
        return all(any(word in label for label in labels) for word in words)


def all_capabilities():
    """Every connector's data source types, in the registry's order (manual first)."""
    return [Capability(c, t) for c in CONNECTORS.values() for t in c.source_types.values()]


def search_capabilities(query):
    """The capabilities whose integration and data source type match every word of the query."""
    words = (query or "").casefold().split()
    return [row for row in all_capabilities() if row.matches(words)]


def capability_of(connector_key, source_type_key):
    """The capability of one data source's connector and type; KeyError for an unknown one."""
    connector = CONNECTORS[connector_key]
    return Capability(connector, connector.source_types[source_type_key])

