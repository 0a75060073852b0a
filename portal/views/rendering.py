"""The one place that decides whether a request gets a whole page or just a fragment."""

from flask import make_response, render_template, request


def wants_fragment():
    """An htmx request that is not a history restore gets the fragment alone."""
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )


def render_page_or_fragment(page_template, fragment_template, **context):
    """Render the page for a browser and the fragment for htmx, from one context."""
    response = make_response(render_template(fragment_template if wants_fragment() else page_template, **context))
    response.headers["Vary"] = "HX-Request"
    return response
