"""Recounting a data source's registrations: the smallest real job."""

from portal.jobs import enqueue, tracked
from portal.operations.counting import recount_registrations


@tracked
def recount(job, progress):
    """RQ entry point: recount the job's data source."""
    return recount_registrations(job.data_source_id, progress)


def start_recount(data_source, user):
    """Queue a recount of the data source."""
    return enqueue(
        recount,
        "recount",
        organization_id=data_source.organization_id,
        data_source_id=data_source.id,
        requested_by_id=user.id if user else None,
    )
