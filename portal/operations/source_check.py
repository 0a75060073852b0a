"""Before a deletion: how many of the selected registrations the original source still has.

Only where the connector can tell (the SQL connector counts ids in its table or query,
Pipedrive lists deals or activities by id, 100 a request) and only for a ticked selection
of at most MAX_CHECKED registrations; the source gets a few seconds, and a source that is
slow or unreachable makes the answer "unknown", never an error.
"""

import logging
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from sqlalchemy import select

from portal.connectors import reader_for
from portal.connectors.base import ConnectorError
from portal.extensions import db
from portal.models import Registration
from portal.operations.importing import config_of

MAX_CHECKED = 1000
TIMEOUT_SECONDS = 3.0
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AtSource:
    """`still` of the `checked` selected registrations are still in the source."""

    still: int
    checked: int


def still_at_source(data_source, selection, timeout=TIMEOUT_SECONDS):
    """AtSource for the selection, or None when the connector cannot tell (or not in time)."""
    reader = reader_for(data_source.connector)
    if (reader is None or not hasattr(reader, "count_existing") or selection.is_all_matching
            or len(selection.ids) > MAX_CHECKED):
        return None
    external_ids = db.session.scalars(select(Registration.external_id).where(*selection.clauses())).all()
    if not external_ids:
        return None
    config = config_of(data_source)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="source-check")
    try:
        still = pool.submit(reader.count_existing, config, external_ids).result(timeout=timeout)
    except FutureTimeout:
        log.info("Data source %s: the source did not answer within %.0f s", data_source.id, timeout)
        return None
    except ConnectorError as error:
        log.info("Data source %s: could not check the source: %s", data_source.id, error)
        return None
    finally:
        pool.shutdown(wait=False)  # a slow source finishes in the background; the dialog does not wait
    return AtSource(still, len(external_ids))
