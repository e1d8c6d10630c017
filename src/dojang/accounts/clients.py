"""Service clients and the audiences they may get tokens for.

An *audience* is an API that accepts dojang access tokens (``orders-api``) with the scopes it
understands. A *client* is a service account with a secret (shown once, stored as SHA-256)
and a grant table: for each audience, the scopes it may request.

OpenID Connect relying parties are clients too, with a registered token endpoint
authentication method: a secret (``client_secret_basic`` / ``client_secret_post``), a JWT
signed with one of their registered public keys (``private_key_jwt``), or nothing (``none``,
public clients with PKCE). Clients without a secret get a secret hash no secret can match.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from dojang.accounts._storage import begin, read
from dojang.clock import SYSTEM_CLOCK, Clock
from dojang.errors import AuthError, InvalidToken
from dojang.jose.jwk import PRIVATE_MEMBERS, Key
from dojang.storage.db import Database
from dojang.storage.oauth_tables import audiences_table, clients_table, revoked_tokens_table
from dojang.storage.oidc_tables import oidc_clients_table
from dojang.storage.sqlite_read import IndexedSelect

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_SCOPE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]{1,128}$")  # RFC 6749 §3.3 scope-token
# A fixed hash to compare against when the client id is unknown, so timing does not reveal
# which client ids exist.
_DUMMY_HASH = hashlib.sha256(b"dojang-no-such-client").hexdigest()
# Stored as the secret hash of clients that have no secret (public and private_key_jwt
# clients): a SHA-256 hex digest never contains "-", so no secret can ever match it, not even
# one somebody saw at registration time.
_NO_SECRET_HASH = "-" * 64


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


_CLIENT_BY_ID = IndexedSelect(
    select(clients_table).where(clients_table.c.client_id == bindparam("client_id"))
)
_OIDC_CLIENT_BY_ID = IndexedSelect(
    select(oidc_clients_table).where(oidc_clients_table.c.client_id == bindparam("client_id"))
)


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
        async with read(self._db) as conn:
            row = (
                await conn.execute(select(audiences_table).where(audiences_table.c.name == name))
            ).first()
        return None if row is None else Audience(row.name, parse_scopes(row.scopes))

    async def list_audiences(self) -> list[Audience]:
        """Every registered audience, by name."""
        async with read(self._db) as conn:
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
        secret = secrets.token_urlsafe(32)
        client = await self._insert_client(name, grants, serves, _hash_secret(secret))
        return client, secret

    async def _insert_client(
        self, name: str, grants: dict[str, str], serves: str | None, secret_hash: str
    ) -> Client:
        """Validate and insert a ``clients`` row with the given secret hash."""
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
        try:
            async with begin(self._db) as conn:
                await conn.execute(
                    insert(clients_table).values(
                        client_id=client.client_id,
                        name=name,
                        secret_hash=secret_hash,
                        grants=json.dumps({a: " ".join(sorted(s)) for a, s in parsed.items()}),
                        serves=serves,
                        created_at=client.created_at,
                    )
                )
        except IntegrityError:
            raise RegistryError(f"client {name!r} already exists") from None
        return client

    async def _row(self, client_id: str) -> tuple[Client, str] | None:
        # Every token request authenticates a client: an indexed read, never a transaction.
        row = await _CLIENT_BY_ID.one(self._db, "account store", client_id=client_id)
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
        async with read(self._db) as conn:
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
        token_endpoint_auth_method: str | None = None,
        jwks: Mapping[str, object] | None = None,
    ) -> tuple[OIDCClient, str | None]:
        """Register a relying party; returns it with its secret (``None`` unless it uses one).

        ``token_endpoint_auth_method`` defaults to ``client_secret_basic`` for confidential
        clients and is always ``none`` for public ones. ``private_key_jwt`` needs ``jwks``, the
        client's PUBLIC keys (checked by ``check_client_jwks``). Clients without a secret get a
        client row whose secret hash no secret matches, so they can never authenticate with one.
        """
        if client_type not in CLIENT_TYPES:
            raise RegistryError(f"client type must be one of {', '.join(CLIENT_TYPES)}")
        method = _auth_method(client_type, token_endpoint_auth_method)
        jwks_json: str | None = None
        if method == PRIVATE_KEY_JWT:
            if jwks is None:
                raise RegistryError("private_key_jwt needs the client's public keys (--jwks-file)")
            jwks_json = public_jwks_json(check_client_jwks(jwks))
        elif jwks is not None:
            raise RegistryError(
                "a JWKS is registered only with --token-endpoint-auth-method private_key_jwt"
            )
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
        secret: str | None = None
        if method in SECRET_METHODS:
            client, secret = await self.add_client(name, grants=grants or {})
        else:
            client = await self._insert_client(name, grants or {}, None, _NO_SECRET_HASH)
        async with begin(self._db) as conn:
            await conn.execute(
                insert(oidc_clients_table).values(
                    client_id=client.client_id,
                    client_type=client_type,
                    redirect_uris=json.dumps(list(uris)),
                    post_logout_redirect_uris=json.dumps(list(logout_uris)),
                    backchannel_logout_uri=bcl,
                    first_party=first_party,
                    token_endpoint_auth_method=method,
                    jwks=jwks_json,
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
            token_endpoint_auth_method=method,
            jwks=jwks_json,
        )
        return oidc, secret

    async def get_oidc_client(self, client_id: str) -> OIDCClient | None:
        """The relying party with this id, or None (also for plain service clients)."""
        if not client_id or len(client_id) > 64:
            return None
        client = await self.get_client(client_id)
        if client is None:
            return None
        row = await _OIDC_CLIENT_BY_ID.one(self._db, "account store", client_id=client_id)
        return None if row is None else _oidc_from_row(client, row)

    async def set_oidc_jwks(self, name_or_id: str, jwks: Mapping[str, object]) -> OIDCClient:
        """Replace the public keys of a ``private_key_jwt`` client (key rotation).

        The new set takes effect for the next assertion; to rotate without a gap, register a
        set holding both the old and the new key, then one with only the new key. Refused
        (``RegistryError``) for clients that authenticate another way, or with a bad JWKS.
        """
        keys = check_client_jwks(jwks)
        async with begin(self._db) as conn:
            row = (
                await conn.execute(
                    select(clients_table.c.client_id).where(
                        (clients_table.c.name == name_or_id)
                        | (clients_table.c.client_id == name_or_id)
                    )
                )
            ).first()
            if row is None:
                raise RegistryError(f"no client {name_or_id!r}")
            result = await conn.execute(
                update(oidc_clients_table)
                .where(
                    oidc_clients_table.c.client_id == row.client_id,
                    oidc_clients_table.c.token_endpoint_auth_method == PRIVATE_KEY_JWT,
                )
                .values(jwks=public_jwks_json(keys))
            )
            if result.rowcount != 1:
                raise RegistryError(f"client {name_or_id!r} does not use {PRIVATE_KEY_JWT}")
        updated = await self.get_oidc_client(row.client_id)
        assert updated is not None
        return updated

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
        async with read(self._db) as conn:
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

# Token endpoint authentication methods (OIDC Core §9, OIDC Registration §2). The two secret
# methods only differ in where the secret travels, so a secret client may use either.
CLIENT_SECRET_BASIC = "client_secret_basic"  # noqa: S105 - a method name, not a secret
CLIENT_SECRET_POST = "client_secret_post"  # noqa: S105 - a method name, not a secret
PRIVATE_KEY_JWT = "private_key_jwt"
NO_AUTHENTICATION = "none"
SECRET_METHODS = frozenset({CLIENT_SECRET_BASIC, CLIENT_SECRET_POST})
AUTH_METHODS: tuple[str, ...] = (
    CLIENT_SECRET_BASIC,
    CLIENT_SECRET_POST,
    PRIVATE_KEY_JWT,
    NO_AUTHENTICATION,
)
# A client rotates keys by publishing the next one beside the current one; a handful is plenty
# and bounds the work of importing a registration.
MAX_CLIENT_KEYS = 16
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
    # One of AUTH_METHODS; the only way this client may authenticate at the token endpoint.
    token_endpoint_auth_method: str = CLIENT_SECRET_BASIC
    # private_key_jwt only: the normalised public JWKS (JSON text) written at registration.
    jwks: str | None = None

    @property
    def is_public(self) -> bool:
        """Public clients (SPAs, native apps) hold no secret (RFC 6749 §2.1)."""
        return self.client_type == "public"

    @property
    def uses_secret(self) -> bool:
        """Whether the client authenticates with a secret (``client_secret_basic``/``_post``)."""
        return self.token_endpoint_auth_method in SECRET_METHODS


def _auth_method(client_type: str, requested: str | None) -> str:
    """The token endpoint auth method to register, checked against the client type."""
    if requested is not None and requested not in AUTH_METHODS:
        raise RegistryError(
            f"token endpoint auth method must be one of {', '.join(AUTH_METHODS)}, "
            f"got {requested[:40]!r}"
        )
    if client_type == "public":
        if requested not in (None, NO_AUTHENTICATION):
            raise RegistryError("a public client has no credentials: its auth method is none")
        return NO_AUTHENTICATION
    if requested == NO_AUTHENTICATION:
        raise RegistryError("a confidential client must authenticate; use --type public instead")
    return requested or CLIENT_SECRET_BASIC


def check_client_jwks(document: object) -> tuple[Key, ...]:
    """Validate a client's JWKS for ``private_key_jwt``; ``RegistryError`` names the problem.

    Every entry must be a PUBLIC signing key dojang can verify with (Ed25519, P-256 or RSA of at
    least 2048 bits) with a ``kid`` unique in the set, and an ``alg`` unless the key type
    implies it (EdDSA for Ed25519, ES256 for P-256; RSA needs ``"alg": "RS256"``). Any private
    or symmetric member is refused outright: it means the client's private key was copied.
    """
    keys = document.get("keys") if isinstance(document, Mapping) else None
    if not isinstance(keys, list):
        raise RegistryError('the JWKS must be a JSON object with a "keys" array')
    if not 1 <= len(keys) <= MAX_CLIENT_KEYS:
        raise RegistryError(f"the JWKS must hold 1 to {MAX_CLIENT_KEYS} keys, not {len(keys)}")
    found: dict[str, Key] = {}
    for index, entry in enumerate(keys):
        label = f"JWKS keys[{index}]"
        if not isinstance(entry, Mapping):
            raise RegistryError(f"{label} is not a JSON object")
        if isinstance(entry.get("kid"), str):
            label += f" (kid {entry['kid']!r:.70})"
        leaked = sorted(PRIVATE_MEMBERS & entry.keys())
        symmetric = entry.get("kty") == "oct"
        if leaked or symmetric:
            # A shared secret would let dojang (and anyone reading its database) sign as the
            # client; private members mean the client's key was copied out of the client.
            what = "a symmetric (oct) key" if symmetric else f"private member {leaked[0]!r}"
            raise RegistryError(
                f"{label} contains {what}: register only the client's PUBLIC keys "
                "(its private key must never leave the client)"
            )
        try:
            key = Key.from_jwk(entry)
        except InvalidToken as exc:
            raise RegistryError(f"{label}: {exc}") from None
        if key.kid in found:
            raise RegistryError(f"{label}: kid {key.kid!r:.70} is not unique in the set")
        found[key.kid] = key
    return tuple(found.values())


def public_jwks_json(keys: Sequence[Key]) -> str:
    """The JWKS to store: rebuilt from the public key objects (kid, alg and use always set),
    so nothing but public members from the submitted document is ever kept."""
    return json.dumps({"keys": [k.public_jwk() for k in keys]}, separators=(",", ":"))


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
        token_endpoint_auth_method=row.token_endpoint_auth_method,
        jwks=row.jwks,
    )
