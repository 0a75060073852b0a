"""Every job kind and its RQ entry point, for putting a job back on the queue by its row."""

from portal.jobs.counting import recount
from portal.jobs.delete_all import delete_all, delete_source
from portal.jobs.deletion import delete_selection, restore
from portal.jobs.importing import run_import

JOB_FUNCTIONS = {
    "recount": recount,
    "delete_selected": delete_selection,
    "restore": restore,
    "delete_all": delete_all,
    "delete_data_source": delete_source,
    "import": run_import,
}
