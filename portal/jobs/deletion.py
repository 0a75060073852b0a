"""Deleting and restoring registrations in the background, for selections too big for a request."""

from flask import current_app

from portal.jobs import enqueue, tracked
from portal.operations.deletion import Selection, delete_registrations, restore_batch


@tracked
def delete_selection(job, progress):
    """RQ entry point: delete the selection stored in the job's parameters."""
    params = job.params
    progress.update(0, total=params["expected_count"])
    batch = delete_registrations(
        Selection.from_dict(params["selection"]),
        actor_id=job.requested_by_id,
        expected_count=params["expected_count"],
        reason=params.get("reason", ""),
        suppress=params.get("suppress", False),
        restore_days=params["restore_days"],
    )
    progress.update(batch.count)
    return {"deleted": batch.count, "batch_id": batch.id}


@tracked
def restore(job, progress):
    """RQ entry point: restore the deletion batch named in the job's parameters."""
    progress.update(0, total=job.params.get("count"))
    restored = restore_batch(job.params["batch_id"], actor_id=job.requested_by_id, reason=job.params.get("reason", ""))
    progress.update(restored)
    return {"restored": restored}


def start_delete_selection(data_source, user, selection, expected_count, reason, suppress):
    """Queue the deletion of a large selection (one destructive job per data source)."""
    return enqueue(
        delete_selection, "delete_selected",
        organization_id=data_source.organization_id, data_source_id=data_source.id, requested_by_id=user.id,
        params={"selection": selection.to_dict(), "expected_count": expected_count, "reason": reason,
                "suppress": suppress, "restore_days": current_app.config["RESTORE_WINDOW_DAYS"]},
    )


def start_restore(data_source, user, batch, reason=""):
    """Queue restoring a large deletion batch."""
    return enqueue(
        restore, "restore",
        organization_id=data_source.organization_id, data_source_id=data_source.id, requested_by_id=user.id,
        params={"batch_id": batch.id, "count": batch.count, "reason": reason},
    )
