"""Tables for OpenID Connect: client metadata, codes, refresh tokens, consents, logout.

Every secret credential (authorization codes, refresh tokens) is stored as its SHA-256 only:
both carry 256 random bits, so a fast hash suffices and a database dump yields nothing usable.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Boolean, Float, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from dojang.storage.base import Base


class OIDCClientRow(Base):
    """OIDC metadata of a client; the client itself (and its secret hash) is in ``clients``."""

    __tablename__ = "oidc_clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_type: Mapped[str] = mapped_column(String(16))  # "confidential" | "public"
    redirect_uris: Mapped[str] = mapped_column(Text)  # JSON list, matched exactly
    post_logout_redirect_uris: Mapped[str] = mapped_column(Text)  # JSON list
    backchannel_logout_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    first_party: Mapped[bool] = mapped_column(Boolean, default=False)
    # How the client authenticates at the token endpoint (OIDC Registration §2):
    # client_secret_basic | client_secret_post | private_key_jwt | none. The registered method
    # decides; a client can never switch to another one by itself.
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(32))
    # private_key_jwt only: the client's PUBLIC keys as a normalised JWKS (JSON), each with kid
    # and alg. Public keys are not secret, so they are stored as they are.
    jwks: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)


class AuthorizationCodeRow(Base):
    """A single-use authorization code (RFC 6749 §4.1.2), kept briefly after use for replay."""

    __tablename__ = "oidc_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    sid: Mapped[str] = mapped_column(String(64))
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(Text, nullable=True)
    code_challenge: Mapped[str] = mapped_column(String(64))
    auth_time: Mapped[float] = mapped_column(Float)
    amr: Mapped[str] = mapped_column(Text)  # space-separated methods
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    used_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # What the code produced, so a replay can revoke it (RFC 6749 §10.5, OAuth 2.1 §4.1.3).
    family_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    access_jti: Mapped[str | None] = mapped_column(String(64), nullable=True)
    access_exp: Mapped[float | None] = mapped_column(Float, nullable=True)


class RefreshTokenRow(Base):
    """One refresh token of a rotation family, bound to the dojang session ``sid``."""

    __tablename__ = "oidc_refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(64), index=True)
    client_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    sid: Mapped[str] = mapped_column(String(64), index=True)
    scope: Mapped[str] = mapped_column(Text)
    auth_time: Mapped[float] = mapped_column(Float)
    amr: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    rotated_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class ConsentRow(Base):
    """The scopes a user has allowed a (third-party) client, remembered per client."""

    __tablename__ = "oidc_consents"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    scopes: Mapped[str] = mapped_column(Text)
    granted_at: Mapped[float] = mapped_column(Float)


class ClientSessionRow(Base):
    """A client that was given a code in dojang session ``sid`` (it holds a session there)."""

    __tablename__ = "oidc_client_sessions"

    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)


class LogoutDeliveryRow(Base):
    """One Back-Channel Logout notification to one client, until delivered or given up."""

    __tablename__ = "oidc_logout_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(String(64))
    sid: Mapped[str] = mapped_column(String(64))
    sub: Mapped[str] = mapped_column(String(64))
    uri: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), index=True)  # pending|delivered|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float, index=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    delivered_at: Mapped[float | None] = mapped_column(Float, nullable=True)


oidc_clients_table = cast(Table, OIDCClientRow.__table__)
codes_table = cast(Table, AuthorizationCodeRow.__table__)
refresh_tokens_table = cast(Table, RefreshTokenRow.__table__)
consents_table = cast(Table, ConsentRow.__table__)
client_sessions_table = cast(Table, ClientSessionRow.__table__)
logout_deliveries_table = cast(Table, LogoutDeliveryRow.__table__)

OIDC_TABLES = (
    oidc_clients_table,
    codes_table,
    refresh_tokens_table,
    consents_table,
    client_sessions_table,
    logout_deliveries_table,
)
