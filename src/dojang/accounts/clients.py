"""Service clients and the audiences they may get tokens for.

An *audience* is an API that accepts dojang access tokens (``orders-api``) with the scopes it
understands. A *client* is a service account with a secret (shown once, stored as SHA-256)
and a grant table: for each audience, the scopes it may request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from dojang.accounts._storage import begin
from dojang.clock import SYSTEM_CLOCK, Clock
from dojang.errors import AuthError
from dojang.storage.db import Database
from dojang.storage.oauth_tables import audiences_table, clients_table, revoked_tokens_table
from dojang.storage.oidc_tables import oidc_clients_table

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_SCOPE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]{1,128}$")  # RFC 6749 §3.3 scope-token
# A fixed hash to compare against when the client id is unknown, so timing does not reveal
# which client ids exist.
_DUMMY_HASH = hashlib.sha256(b"dojang-no-such-client").hexdigest()


class InvalidClient(AuthError):
    """Client authentication failed (unknown client or wrong secret)."""

    code = "invalid_client"


class RegistryError(AuthError):
    """A client or audience definition is invalid or conflicts with an existing one."""

    code = "invalid_registration"


@dataclass(frozen=True, slots=True)
class Audience:
    """A registered API and the scopes it understands."""

    name: str
    scopes: frozenset[str]


@dataclass(frozen=True, slots=True)
class Client:
    """A registered service client (never carries its secret)."""

    client_id: str
    name: str
    grants: dict[str, frozenset[str]] = field(default_factory=dict)
    serves: str | None = None
    created_at: float = 0.0


def parse_scopes(text: str) -> frozenset[str]:
    """Split a space-separated scope string, refusing characters RFC 6749 §3.3 forbids."""
    items = [s for s in text.split(" ") if s]
    for s in items:
        if not _SCOPE.match(s):
            raise RegistryError(f"invalid scope {s[:40]!r}")
    return frozenset(items)


def _check_name(kind: str, name: str) -> str:
    if not _NAME.match(name):
        raise RegistryError(f"{kind} name must match {_NAME.pattern}, got {name[:40]!r}")
    return name


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


class ClientRegistry:
    """Audiences, clients and individually revoked tokens, in the relational database."""

    def __init__(self, db: Database, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._db = db
        self._clock = clock

    # --- audiences ------------------------------------------------------------------------

    async def add_audience(self, name: str, scopes: str) -> Audience:
        """Register an API; ``RegistryError`` if the name is taken or malformed."""
        aud = Audience(_check_name("audience", name), parse_scopes(scopes))
        try:
            async with begin(self._db) as conn:
                await conn.execute(
                    insert(audiences_table).values(
                        name=aud.name,
                        scopes=" ".join(sorted(aud.scopes)),
                        created_at=self._clock.now(),
                    )
                )
        except IntegrityError:
            raise RegistryError(f"audience {name!r} already exists") from None
        return aud

    async def get_audience(self, name: str) -> Audience | None:
        """The audience called ``name``, or None."""
        async with begin(self._db) as conn:
            row = (
                await conn.execute(select(audiences_table).where(audiences_table.c.name == name))
            ).first()
        return None if row is None else Audience(row.name, parse_scopes(row.scopes))

    async def list_audiences(self) -> list[Audience]:
        """Every registered audience, by name."""
        async with begin(self._db) as conn:
            rows = (
                await conn.execute(select(audiences_table).order_by(audiences_table.c.name))
            ).all()
        return [Audience(r.name, parse_scopes(r.scopes)) for r in rows]

    async def remove_audience(self, name: str) -> bool:
        """Remove an audience; tokens for it can no longer be minted."""
        async with begin(self._db) as conn:
            result = await conn.execute(
                delete(audiences_table).where(audiences_table.c.name == name)
            )
        return bool(result.rowcount)

    # --- clients --------------------------------------------------------------------------

    async def add_client(
        self, name: str, *, grants: dict[str, str], serves: str | None = None
    ) -> tuple[Client, str]:
        """Register a client; returns it with its secret (shown once, stored hashed).

        Every audience in ``grants`` must exist and the scopes must be ones it understands.
        """
        _check_name("client", name)
        parsed: dict[str, frozenset[str]] = {}
        for audience, scope_text in grants.items():
            aud = await self.get_audience(audience)
            if aud is None:
                raise RegistryError(f"unknown audience {audience!r}; add it first")
            scopes = parse_scopes(scope_text)
            if not scopes <= aud.scopes:
                extra = " ".join(sorted(scopes - aud.scopes))
                raise RegistryError(f"audience {audience!r} has no scope(s) {extra}")
            parsed[audience] = scopes
        if serves is not None and await self.get_audience(serves) is None:
            raise RegistryError(f"unknown audience {serves!r} for --serves")
        client = Client(f"svc_{secrets.token_urlsafe(12)}", name, parsed, serves, self._clock.now())
        secret = secrets.token_urlsafe(32)
        try:
            async with begin(self._db) as conn:
                await conn.execute(
                    insert(clients_table).values(
                        client_id=client.client_id,
                        name=name,
                        secret_hash=_hash_secret(secret),
                        grants=json.dumps({a: " ".join(sorted(s)) for a, s in parsed.items()}),
                        serves=serves,
                        created_at=client.created_at,
                    )
                )
        except IntegrityError:
            raise RegistryError(f"client {name!r} already exists") from None
        return client, secret

    async def _row(self, client_id: str) -> tuple[Client, str] | None:
        async with begin(self._db) as conn:
            row = (
                await conn.execute(
                    select(clients_table).where(clients_table.c.client_id == client_id)
                )
            ).first()
        if row is None:
            return None
        grants = {a: parse_scopes(s) for a, s in json.loads(row.grants).items()}
        return Client(row.client_id, row.name, grants, row.serves, row.created_at), row.secret_hash

    async def get_client(self, client_id: str) -> Client | None:
        """The client with this id, or None."""
        found = await self._row(client_id)
        return None if found is None else found[0]

    async def authenticate(self, client_id: str, secret: str) -> Client:
        """Check a client's secret in constant time; ``InvalidClient`` for any failure."""
        found = await self._row(client_id) if len(client_id) <= 64 else None
        expected = found[1] if found else _DUMMY_HASH
        ok = hmac.compare_digest(_hash_secret(secret), expected)
        if found is None or not ok:
            raise InvalidClient("client authentication failed")
        return found[0]

    async def list_clients(self) -> list[Client]:
        """Every client, by name."""
        async with begin(self._db) as conn:
            rows = (await conn.execute(select(clients_table).order_by(clients_table.c.name))).all()
        return [
            Client(
                r.client_id,
                r.name,
                {a: parse_scopes(s) for a, s in json.loads(r.grants).items()},
                r.serves,
                r.created_at,
            )
            for r in rows
        ]

    async def remove_client(self, name_or_id: str) -> bool:
        """Remove a client by name or id; its secret stops working at once."""
        async with begin(self._db) as conn:
            result = await conn.execute(
                delete(clients_table).where(
                    (clients_table.c.name == name_or_id) | (clients_table.c.client_id == name_or_id)
                )
            )
        return bool(result.rowcount)

    # --- OpenID Connect relying parties ---------------------------------------------------

    async def add_oidc_client(
        self,
        name: str,
        *,
        client_type: str,
        redirect_uris: Sequence[str],
        post_logout_redirect_uris: Sequence[str] = (),
        backchannel_logout_uri: str | None = None,
        first_party: bool = False,
        grants: dict[str, str] | None = None,
    ) -> tuple[OIDCClient, str | None]:
        """Register a relying party; returns it with its secret (``None`` for public clients).

        A public client gets a client row whose secret hash matches no secret anyone knows, so it
        can never authenticate with a secret (it proves possession with PKCE alone).
        """
        if client_type not in CLIENT_TYPES:
            raise RegistryError(f"client type must be one of {', '.join(CLIENT_TYPES)}")
        if not redirect_uris:
            raise RegistryError("an OIDC client needs at least one --redirect-uri")
        uris = tuple(dict.fromkeys(check_redirect_uri(u) for u in redirect_uris))
        logout_uris = tuple(
            dict.fromkeys(
                check_redirect_uri(u, what="post-logout redirect URI")
                for u in post_logout_redirect_uris
            )
        )
        bcl = (
            None
            if backchannel_logout_uri is None
            else check_redirect_uri(backchannel_logout_uri, what="back-channel logout URI")
        )
        client, secret = await self.add_client(name, grants=grants or {})
        async with begin(self._db) as conn:
            await conn.execute(
                insert(oidc_clients_table).values(
                    client_id=client.client_id,
                    client_type=client_type,
                    redirect_uris=json.dumps(list(uris)),
                    post_logout_redirect_uris=json.dumps(list(logout_uris)),
                    backchannel_logout_uri=bcl,
                    first_party=first_party,
                    created_at=client.created_at,
                )
            )
        oidc = OIDCClient(
            client.client_id,
            name,
            "public" if client_type == "public" else "confidential",
            uris,
            logout_uris,
            bcl,
            first_party,
        )
        return oidc, (None if oidc.is_public else secret)

    async def get_oidc_client(self, client_id: str) -> OIDCClient | None:
        """The relying party with this id, or None (also for plain service clients)."""
        if not client_id or len(client_id) > 64:
            return None
        client = await self.get_client(client_id)
        if client is None:
            return None
        async with begin(self._db) as conn:
            row = (
                await conn.execute(
                    select(oidc_clients_table).where(oidc_clients_table.c.client_id == client_id)
                )
            ).first()
        return None if row is None else _oidc_from_row(client, row)

    # --- individually revoked tokens (RFC 7009) ------------------------------------------

    async def revoke_jti(self, jti: str, exp: float) -> None:
        """Remember that token ``jti`` is revoked until ``exp`` (idempotent)."""
        try:
            async with begin(self._db) as conn:
                await conn.execute(insert(revoked_tokens_table).values(jti=jti, exp=exp))
        except IntegrityError:
            return  # already revoked: RFC 7009 revocation is idempotent

    async def is_jti_revoked(self, jti: str) -> bool:
        """Whether ``jti`` was revoked (and has not yet expired anyway)."""
        async with begin(self._db) as conn:
            row = (
                await conn.execute(
                    select(revoked_tokens_table.c.exp).where(revoked_tokens_table.c.jti == jti)
                )
            ).first()
        return row is not None and row.exp > self._clock.now()

    async def purge_revoked(self) -> int:
        """Forget revocations of tokens that have expired."""
        async with begin(self._db) as conn:
            result = await conn.execute(
                delete(revoked_tokens_table).where(revoked_tokens_table.c.exp <= self._clock.now())
            )
        return int(result.rowcount or 0)


# --- OpenID Connect clients (relying parties) ------------------------------------------------

ClientType = Literal["confidential", "public"]
CLIENT_TYPES: tuple[ClientType, ...] = ("confidential", "public")
MAX_URI_LENGTH = 512
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


@dataclass(frozen=True, slots=True)
class OIDCClient:
    """A relying party: how it authenticates and where dojang may send the browser (or POST)."""

    client_id: str
    name: str
    client_type: ClientType
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...] = ()
    backchannel_logout_uri: str | None = None
    first_party: bool = False

    @property
    def is_public(self) -> bool:
        """Public clients (SPAs, native apps) hold no secret (RFC 6749 §2.1)."""
        return self.client_type == "public"


def check_redirect_uri(uri: str, *, what: str = "redirect URI") -> str:
    """Validate a URI registered for redirects or back-channel POSTs.

    RFC 6749 §3.1.2: absolute, no fragment. https everywhere; plain http only to a loopback
    host (RFC 8252 §7.3); private-use schemes with a dot (RFC 8252 §7.1) for native apps.
    """
    if not uri or len(uri) > MAX_URI_LENGTH or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in uri):
        raise RegistryError(f"{what} must be 1..{MAX_URI_LENGTH} printable characters")
    parts = urlsplit(uri)
    if parts.fragment or "#" in uri:
        raise RegistryError(f"{what} must not have a fragment: {uri[:80]!r}")
    if parts.scheme == "https" and parts.hostname:
        return uri
    if parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS:
        return uri
    if parts.scheme not in ("http", "https", "") and "." in parts.scheme and what == "redirect URI":
        return uri
    raise RegistryError(
        f"{what} must be https, http on a loopback host, or a private-use scheme: {uri[:80]!r}"
    )


def _oidc_from_row(client: Client, row: Any) -> OIDCClient:
    return OIDCClient(
        client_id=client.client_id,
        name=client.name,
        client_type="public" if row.client_type == "public" else "confidential",
        redirect_uris=tuple(json.loads(row.redirect_uris)),
        post_logout_redirect_uris=tuple(json.loads(row.post_logout_redirect_uris)),
        backchannel_logout_uri=row.backchannel_logout_uri,
        first_party=bool(row.first_party),
    )
