"""Deleting all registrations, or a whole data source, as resumable background jobs."""

from flask import current_app

from portal.jobs import enqueue, tracked
from portal.operations.delete_all import (
    delete_all_registrations,
    delete_data_source,
    mark_for_deletion,
    record_failed_delete_all,
)


def _record_failure(job, error):
    record_failed_delete_all(job.data_source_id, actor_id=job.requested_by_id, error=error)


@tracked(on_failure=_record_failure)
def delete_all(job, progress):
    """RQ entry point: move every registration of the job's data source into the restore window."""
    params = job.params
    batch = delete_all_registrations(
        job.data_source_id, actor_id=job.requested_by_id, progress=progress, reason=params.get("reason", ""),
        suppress=params.get("suppress", False), restore_days=params["restore_days"],
    )
    return {"deleted": batch.count, "batch_id": batch.id}


@tracked
def delete_source(job, progress):
    """RQ entry point: remove the data source named in the job's parameters."""
    return delete_data_source(job.params["data_source_id"], actor_id=job.requested_by_id, progress=progress,
                              reason=job.params.get("reason", ""), chunk_size=current_app.config["DELETE_CHUNK_SIZE"])


def start_delete_all(data_source, user, reason="", suppress=False):
    """Queue deleting every registration (refused while another destructive job runs)."""
    return enqueue(
        delete_all, "delete_all",
        organization_id=data_source.organization_id, data_source_id=data_source.id, requested_by_id=user.id,
        params={"reason": reason, "suppress": suppress, "restore_days": current_app.config["RESTORE_WINDOW_DAYS"]},
    )


def start_delete_source(data_source, user, reason=""):
    """Hide the data source and queue its removal."""
    mark_for_deletion(data_source)
    return enqueue(
        delete_source, "delete_data_source",
        organization_id=data_source.organization_id, data_source_id=data_source.id, requested_by_id=user.id,
        params={"data_source_id": data_source.id, "name": data_source.name, "reason": reason},
    )
