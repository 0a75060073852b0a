"""Subscribing Pipedrive Deals data sources to deletion webhooks, and checking what arrives."""

import hmac
import secrets

from portal.connectors import source_type_of
from portal.connectors.base import ConnectorError
from portal.connectors.pipedrive import register_deletion_webhook, remove_deletion_webhook
from portal.extensions import db
from portal.models import DataSource
from portal.operations.importing import config_of

from sqlalchemy import select


def webhook_data_sources():
    """Data sources whose connector pushes deletions by webhook."""
    return [ds for ds in db.session.scalars(select(DataSource).where(DataSource.pending_deletion.is_(False)))
            if source_type_of(ds.connector, ds.source_type).deletion == "webhook"]


def ensure_deletion_webhook(data_source, subscription_url):
    """(Re)register the data source's webhook with credentials unique to it; returns the webhook id."""
    creds = dict(data_source.secrets or {})
    creds.setdefault("webhook_user", f"portal-{data_source.id}")
    creds.setdefault("webhook_password", secrets.token_urlsafe(24))
    settings = dict(data_source.settings or {})
    config = config_of(data_source)
    if settings.get("webhook_id"):
        try:
            remove_deletion_webhook(config, settings["webhook_id"])
        except ConnectorError:
            pass  # the old subscription may be gone with a restarted source; a new one follows
    settings["webhook_id"] = register_deletion_webhook(config, subscription_url, creds["webhook_user"],
                                                       creds["webhook_password"])
    data_source.secrets, data_source.settings = creds, settings
    db.session.commit()
    return settings["webhook_id"]


def credentials_match(data_source, user, password):
    """Constant-time check of a webhook's basic auth against the data source's own credentials."""
    creds = data_source.secrets or {}
    expected_user, expected_password = creds.get("webhook_user"), creds.get("webhook_password")
    if not expected_user or not expected_password or user is None or password is None:
        return False
    return hmac.compare_digest(user, expected_user) & hmac.compare_digest(password, expected_password)
