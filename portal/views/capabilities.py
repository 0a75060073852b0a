"""The "Automatic deletion" lookup: which integration and data source type propagates deletions."""

from flask import Blueprint, request
from flask_login import login_required

from portal.operations.capabilities import capability_of, search_capabilities
from portal.views.rendering import render_page_or_fragment

bp = Blueprint("capabilities", __name__)


@bp.get("/automatic-deletion")
@login_required
def lookup():
    """The capability table, narrowed by the search words (the rows alone for htmx)."""
    query = request.args.get("q", "").strip()
    return render_page_or_fragment("capabilities/lookup.html", "capabilities/_rows.html",
                                   query=query, rows=search_capabilities(query))


# Each data source's header shows its own line of the table (capabilities/_line.html).
bp.add_app_template_global(capability_of)
