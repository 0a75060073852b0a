"""How a long operation reports progress without knowing who listens."""


class Progress:
    """Progress reporting; this base ignores it (used when an operation runs inline)."""

    def update(self, done, total=None, cursor=None):
        """Record progress so far, in the caller's current transaction."""

    @property
    def cursor(self):
        """Where a previous attempt stopped, or an empty dict."""
        return {}


NO_PROGRESS = Progress()
