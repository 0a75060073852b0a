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

    def follow_filter(self, flt):
        """An all-matching selection belongs to its filter: a new filter ends it (True if so)."""
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
    """Load and change one user's selection for one data source, atomically in Redis.

    Ticks arrive as concurrent requests (a quick user, several tabs): each one is a single
    SADD or SREM on a Redis set, never a read-modify-write of the whole selection.
    """

    def __init__(self, redis, user_id, data_source_id):
        self.redis = redis
        self.data_source_id = data_source_id
        prefix = f"portal:selection:{user_id}:{data_source_id}"
        self.ids_key, self.excluded_key, self.filter_key = f"{prefix}:ids", f"{prefix}:excluded", f"{prefix}:filter"

    def load(self):
        """The stored selection, or an empty one."""
        pipe = self.redis.pipeline()
        pipe.smembers(self.ids_key).smembers(self.excluded_key).get(self.filter_key)
        ids, excluded, flt = pipe.execute()
        return StoredSelection(self.data_source_id, {int(i) for i in ids},
                               json.loads(flt) if flt else None, {int(i) for i in excluded})

    def tick(self, registration_ids, checked):
        """Tick or untick rows (in an all-matching selection, unticking excludes them)."""
        if not registration_ids:
            return
        if self.redis.exists(self.filter_key):
            key, add = self.excluded_key, not checked
        else:
            key, add = self.ids_key, checked
        pipe = self.redis.pipeline()
        (pipe.sadd if add else pipe.srem)(key, *registration_ids)
        self._touch(pipe)
        pipe.execute()

    def select_all_matching(self, flt):
        """Select every registration matching the filter, across pages."""
        pipe = self.redis.pipeline()
        pipe.delete(self.ids_key, self.excluded_key).set(self.filter_key, json.dumps(flt.to_dict()))
        self._touch(pipe)
        pipe.execute()

    def end_all_matching(self):
        """Leave an all-matching selection (its filter changed)."""
        self.redis.delete(self.filter_key, self.excluded_key)

    def clear(self):
        """Forget the selection."""
        self.redis.delete(self.ids_key, self.excluded_key, self.filter_key)

    def _touch(self, pipe):
        for key in (self.ids_key, self.excluded_key, self.filter_key):
            pipe.expire(key, TTL_SECONDS)
