"""Tables for OAuth service clients, registered audiences and revoked token ids."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Float, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from dojang.storage.base import Base


class AudienceRow(Base):
    """An API that accepts dojang access tokens, with the scopes it understands."""

    __tablename__ = "audiences"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    scopes: Mapped[str] = mapped_column(Text)  # space-separated, like the scope claim
    created_at: Mapped[float] = mapped_column(Float)


class ClientRow(Base):
    """A service account that authenticates at ``/oauth2/token``."""

    __tablename__ = "clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True, index=True)
    # SHA-256 of a 256-bit random secret: the secret has full entropy, so a fast hash is
    # enough (no password stretching needed) and a database dump yields no usable secret.
    secret_hash: Mapped[str] = mapped_column(String(64))
    # JSON {"audience": "scope scope"}: what this client may request for whom.
    grants: Mapped[str] = mapped_column(Text)
    # The audience this client *is* (the API it runs), for token exchange; may be empty.
    serves: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[float] = mapped_column(Float)


class RevokedTokenRow(Base):
    """Access tokens revoked individually (RFC 7009), kept until they would expire anyway."""

    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(128), primary_key=True)
    exp: Mapped[float] = mapped_column(Float, index=True)


audiences_table = cast(Table, AudienceRow.__table__)
clients_table = cast(Table, ClientRow.__table__)
revoked_tokens_table = cast(Table, RevokedTokenRow.__table__)
