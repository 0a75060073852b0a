"""Importing a period from a data source's original source, as a background job."""

from datetime import date

from flask import current_app

from portal.connectors import reader_for
from portal.connectors.base import Period
from portal.extensions import db
from portal.jobs import enqueue, tracked
from portal.models import DataSource
from portal.operations import audit
from portal.operations.importing import import_period


def _record_failure(job, error):
    """Audit an import that gave up (pages committed before the failure stay, and are idempotent)."""
    data_source = db.session.get(DataSource, job.data_source_id) if job.data_source_id else None
    if data_source is not None:
        outcome = "canceled" if job.cancel_requested_at else "failed"
        audit.record("import", data_source, job.requested_by_id, outcome=outcome, reason=error,
                     details={"period": [job.params.get("start"), job.params.get("end")], "job_id": job.id,
                              "rows_read": job.progress_done})


@tracked(on_failure=_record_failure)
def run_import(job, progress):
    """RQ entry point: import the job's period; a rerun after a crash gives the same final state."""
    period = Period(date.fromisoformat(job.params["start"]), date.fromisoformat(job.params["end"]))
    report = import_period(job.data_source_id, period, reader=reader_for(job.params["connector"]),
                           progress=progress, actor_id=job.requested_by_id,
                           confirm_removals=job.params.get("confirm_removals", False),
                           restore_days=current_app.config["RESTORE_WINDOW_DAYS"])
    return report.as_dict()


def start_import(data_source, user, period, confirm_removals=False):
    """Queue an import of the period (one import or destructive job per data source)."""
    return enqueue(
        run_import, "import",
        organization_id=data_source.organization_id, data_source_id=data_source.id,
        requested_by_id=user.id if user else None,
        params={"start": period.start.isoformat(), "end": period.end.isoformat(), "connector": data_source.connector,
                "confirm_removals": confirm_removals},
    )
