"""Error pages, and error messages that htmx shows in place of a page."""

from flask import render_template

from portal.views.rendering import wants_fragment

TITLES = {400: "That request is not right", 403: "You may not do that", 404: "Not found",
          429: "Too many attempts", 422: "That cannot be done"}


def message_response(message, status, title=None):
    """A message as a page, or for htmx as an alert swapped into the page's message area."""
    if wants_fragment():
        response = render_template("errors/_alert.html", message=message)
        return response, status, {"HX-Retarget": "#messages", "HX-Reswap": "innerHTML"}
    return render_template("errors/message.html", message=message, title=title or TITLES.get(status)), status


def dialog_refusal(message):
    """Keep a confirmation dialog open and say in it why nothing happened."""
    if wants_fragment():
        return render_template("errors/_alert.html", message=message), 422, {
            "HX-Retarget": "#dialog-error", "HX-Reswap": "innerHTML"}
    return message_response(message, 422)


def handle_http_error(error):
    """Render 4xx errors in the portal's layout (and as alerts for htmx)."""
    messages = {404: "There is nothing here, or you may not see it.",
                403: "Your role does not allow this. Ask a team lead of your organization."}
    message = messages.get(error.code) if error.description == type(error).description else error.description
    return message_response(message or error.description, error.code)


def init_app(app):
    """Register the handlers."""
    for code in (400, 403, 404, 405, 429):
        app.register_error_handler(code, handle_http_error)
