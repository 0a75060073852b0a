"""API tokens of manual data sources: created (shown once), checked by digest, revoked."""

import hashlib
import secrets

from sqlalchemy import select, update

from portal.extensions import db
from portal.models import ApiToken, DataSource, utcnow
from portal.operations import audit

TOKEN_PREFIX = "dsp_"
SHOWN_PREFIX_LENGTH = 12  # "dsp_" and 8 random characters: enough to tell tokens apart, useless to guess with


def digest(token):
    """The SHA-256 digest kept for a token (a random 256-bit secret needs no slow hash)."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(data_source, actor_id):
    """A new token for the data source: the row, and the token itself, which nothing keeps."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(data_source_id=data_source.id, token_digest=digest(token), prefix=token[:SHOWN_PREFIX_LENGTH],
                   created_by_id=actor_id)
    db.session.add(row)
    db.session.flush()
    audit.record("create_api_token", data_source, actor_id, details={"token_id": row.id, "prefix": row.prefix})
    db.session.commit()
    return row, token


def revoke_token(data_source, token_id, actor_id, reason=""):
    """Stop a token working; False if it is not one of the data source's live tokens."""
    revoked = db.session.execute(
        update(ApiToken).where(ApiToken.id == token_id, ApiToken.data_source_id == data_source.id,
                               ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow()).execution_options(synchronize_session=False)).rowcount
    if revoked:
        audit.record("revoke_api_token", data_source, actor_id, reason=reason, details={"token_id": token_id})
    db.session.commit()
    return bool(revoked)


def live_tokens(data_source_id):
    """The data source's tokens that work, newest first."""
    return db.session.scalars(select(ApiToken).where(ApiToken.data_source_id == data_source_id,
                                                     ApiToken.revoked_at.is_(None))
                              .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())).all()


def data_source_for(token, data_source_id):
    """The manual data source a live token opens, and the token's row, if it is the one asked
    for; None otherwise.

    The same answer for an unknown token, a revoked one and another data source's, so a
    caller learns nothing from trying.
    """
    if not token or not token.startswith(TOKEN_PREFIX):
        return None
    row = db.session.scalar(select(ApiToken).where(ApiToken.token_digest == digest(token)))
    if row is None or row.revoked_at is not None or row.data_source_id != data_source_id:
        return None
    data_source = db.session.get(DataSource, row.data_source_id)
    if data_source is None or data_source.pending_deletion or not data_source.is_manual:
        return None
    row.last_used_at = utcnow()  # committed with what the call writes
    return data_source, row
