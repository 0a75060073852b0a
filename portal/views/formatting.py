"""Template filters and globals for numbers and connector names."""

from portal.connectors import connector_info, source_type_of
from portal.jobs import JOB_LABELS


def thousands(value):
    """1234567 -> '1,234,567'."""
    return f"{int(value or 0):,}"


def plural(count, singular, plural_form=None):
    """'1 registration', '3 registrations'."""
    word = singular if count == 1 else (plural_form or singular + "s")
    return f"{thousands(count)} {word}"


def init_app(app):
    """Register the filters and globals."""
    app.add_template_filter(thousands)
    app.add_template_filter(plural)
    app.add_template_global(lambda key: connector_info(key).label, "connector_label")
    app.add_template_global(lambda c, t: source_type_of(c, t).label, "source_type_label")
    app.add_template_global(source_type_of)
    app.add_template_global(connector_info)
    app.add_template_global(JOB_LABELS, "job_labels")
