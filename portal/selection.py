"""Which registrations a user has ticked on a data source's page, kept in Redis between requests.

A selection is either ticked ids (they survive paging) or "all matching" a filter, minus
the rows unticked since; it is never a list of millions of ids.
"""

import json
from dataclasses import dataclass, field

from portal.operations.deletion import Selection
from portal.operations.listing import RegistrationFilter

TTL_SECONDS = 24 * 3600


@dataclass
class StoredSelection:
    """The selection as the user built it."""

    data_source_id: int
    ids: set = field(default_factory=set)
    all_matching: dict | None = None  # a RegistrationFilter.to_dict() while "all matching" is on
    excluded: set = field(default_factory=set)

    @property
    def is_all_matching(self):
        """Whether the selection is a filter rather than ticked ids."""
        return self.all_matching is not None

    @property
    def is_empty(self):
        """Nothing ticked and no filter selected."""
        return not self.is_all_matching and not self.ids

    def is_selected(self, registration_id):
        """Whether a row shows ticked."""
        if self.is_all_matching:
            return registration_id not in self.excluded
        return registration_id in self.ids

    def tick(self, registration_id, checked):
        """Tick or untick one row."""
        if self.is_all_matching:
            (self.excluded.discard if checked else self.excluded.add)(registration_id)
        else:
            (self.ids.add if checked else self.ids.discard)(registration_id)

    def tick_page(self, registration_ids, checked):
        """Tick or untick every row of a page."""
        for registration_id in registration_ids:
            self.tick(registration_id, checked)

    def select_all_matching(self, flt):
        """Select every registration matching the filter, across pages."""
        self.all_matching, self.ids, self.excluded = flt.to_dict(), set(), set()

    def follow_filter(self, flt):
        """An all-matching selection belongs to its filter: a new filter ends it."""
        if self.is_all_matching and self.all_matching != flt.to_dict():
            self.all_matching, self.excluded = None, set()
            return True
        return False

    def as_operation_selection(self):
        """The selection in the form the deletion operations take."""
        if self.is_all_matching:
            return Selection(RegistrationFilter.from_dict(self.all_matching), excluded_ids=frozenset(self.excluded))
        return Selection(RegistrationFilter(self.data_source_id), ids=frozenset(self.ids))


class SelectionStore:
    """Load and save one user's selection for one data source."""

    def __init__(self, redis, user_id, data_source_id):
        self.redis = redis
        self.data_source_id = data_source_id
        self.key = f"portal:selection:{user_id}:{data_source_id}"

    def load(self):
        """The stored selection, or an empty one."""
        raw = self.redis.get(self.key)
        if not raw:
            return StoredSelection(self.data_source_id)
        data = json.loads(raw)
        return StoredSelection(self.data_source_id, set(data["ids"]), data["all_matching"], set(data["excluded"]))

    def save(self, selection):
        """Keep the selection for a day."""
        data = {"ids": sorted(selection.ids), "all_matching": selection.all_matching,
                "excluded": sorted(selection.excluded)}
        self.redis.set(self.key, json.dumps(data), ex=TTL_SECONDS)

    def clear(self):
        """Forget the selection."""
        self.redis.delete(self.key)
