"""Client authentication with ``private_key_jwt`` (RFC 7523 §2.2 and §3, RFC 7521 §4.2, OIDC Core
§9) at the token endpoint.

The client proves possession of a private key by sending a short-lived JWT signed with it:

    client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer
    client_assertion=<compact JWS>

Checks, in this order (every failure is ``invalid_client``, HTTP 401, RFC 6749 §5.2):

1. the assertion is at most ``MAX_ASSERTION_BYTES`` before anything parses it;
2. it is a strict compact JWS (``dojang.jose``: header only ``alg``/``kid``/``typ``, no ``none``);
3. ``sub`` names a client registered for ``private_key_jwt`` (and equals ``client_id`` if the
   form carries one);
4. the signature verifies with the registered key named by ``kid``, and the header ``alg`` is
   that key's own algorithm (RFC 8725 §3.1): HS256 "signed" with a public key, or any other
   algorithm the key is not bound to, is refused;
5. ``iss`` == ``sub`` == the client id; ``aud`` is this server (its token endpoint URL or its
   issuer identifier) and nothing else; ``exp`` is required and in the future, at most
   ``MAX_LIFETIME`` seconds away and at most that long after ``iat``; ``nbf`` and ``iat`` are
   not in the future;
6. ``jti`` is redeemed once in the replay store, until the assertion has expired.

Only checks after the signature give a specific reason: before it, an unauthenticated caller
learns nothing beyond "client authentication failed".
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Final

from dojang.accounts.clients import PRIVATE_KEY_JWT, OIDCClient
from dojang.errors import InvalidToken, MalformedToken, UnknownKey
from dojang.jose import Key, KeySet, decode_segments, parse_json_object, verify_compact
from dojang.server.oauth import OAuthError
from dojang.tokens.backends.sql import SqlReplayStore
from dojang.tokens.replay import ReplayStore

if TYPE_CHECKING:
    from dojang.server.services import Services

__all__ = [
    "CLIENT_ASSERTION_TYPE",
    "LEEWAY",
    "MAX_ASSERTION_BYTES",
    "MAX_LIFETIME",
    "SIGNING_ALGORITHMS",
    "TOKEN_PATH",
    "AssertionRejected",
    "authenticate_assertion",
    "check_claims",
    "client_keys",
    "is_assertion_request",
    "replay_store",
]

log = logging.getLogger("dojang.security")

CLIENT_ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_PATH: Final = "/oauth2/token"  # noqa: S105 - a path, not a secret
# Every algorithm a registered client key can be bound to (the key's alg decides).
SIGNING_ALGORITHMS: Final = ("EdDSA", "ES256", "RS256")
# An RSA-4096 assertion is under 1.5 KiB; the cap (the JOSE layer's own) stops hostile input
# before any base64 or JSON work, and it is checked here explicitly so the reason is clear.
MAX_ASSERTION_BYTES: Final = 8192
# An assertion authenticates one request moments after it is made. A short window bounds how
# long a leaked assertion is worth anything and how long its jti must be remembered.
MAX_LIFETIME: Final = 300
# Clock skew tolerated between the client and dojang, in seconds.
LEEWAY: Final = 30
MAX_JTI_LENGTH: Final = 256
# RFC 7523 defines no typ; "JWT" is common and draft-ietf-oauth-rfc7523bis proposes
# "client-authentication+jwt". Other types (logout tokens, access tokens…) are other JWTs.
_ACCEPTED_TYPS: Final = frozenset({"jwt", "client-authentication+jwt"})
_FAILED: Final = "client authentication failed"


class AssertionRejected(Exception):
    """A claim of a correctly signed assertion is unacceptable; ``str`` is the reason."""


def _invalid(description: str = _FAILED) -> OAuthError:
    # RFC 6749 §5.2: 401 for failed client authentication; RFC 9110 §15.5.2 wants a challenge.
    return OAuthError(
        "invalid_client", description, 401, {"www-authenticate": 'Basic realm="dojang"'}
    )


def is_assertion_request(form: Mapping[str, str]) -> bool:
    """Whether the form attempts JWT client authentication (either parameter counts, so a
    half-formed attempt is refused instead of falling back to another method)."""
    return "client_assertion" in form or "client_assertion_type" in form


@lru_cache(maxsize=256)
def _keyset(jwks_json: str) -> KeySet:
    # Keyed by the exact stored JSON: re-registering new keys yields a new entry, and importing
    # (RSA ROCA checks, EC point validation) runs once per key set instead of per request.
    return KeySet.from_jwks(parse_json_object(jwks_json.encode("utf-8"), "client JWKS"))


def client_keys(client: OIDCClient) -> KeySet:
    """The public keys registered for a ``private_key_jwt`` client.

    Raises UnknownKey when the client has none, and MalformedToken when any stored entry no
    longer imports: a registration that cannot be read completely is not trusted in part.
    """
    if client.token_endpoint_auth_method != PRIVATE_KEY_JWT or not client.jwks:
        raise UnknownKey("client has no registered keys")
    keys = _keyset(client.jwks)
    if keys.rejected or not len(keys):
        raise MalformedToken("client JWKS does not import cleanly")
    return keys


def _select_key(keys: KeySet, header: Mapping[str, object]) -> Key | KeySet:
    """The key named by ``kid``; without a ``kid`` only a single registered key is unambiguous."""
    if "kid" in header:
        return keys
    registered = keys.keys()
    if len(registered) != 1:
        raise UnknownKey("assertion has no 'kid' and the client has several keys")
    return registered[0]


def _time(claims: Mapping[str, object], name: str) -> float | None:
    """An optional NumericDate claim (RFC 7519 §2) as a float; booleans and NaN are no dates."""
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise AssertionRejected(f"{name} must be a NumericDate")
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float is no date either
        raise AssertionRejected(f"{name} must be a NumericDate") from None
    if not math.isfinite(number):
        raise AssertionRejected(f"{name} must be a NumericDate")
    return number


def _audience_ok(aud: object, accepted: frozenset[str]) -> bool:
    # RFC 7523 §3 item 3 only asks that aud *contain* the server. Requiring that every value
    # names this server closes the "audience injection" attack on private_key_jwt (OpenID
    # Foundation advisory, 2025): an assertion also addressed to another server could be
    # presented there by that server.
    if isinstance(aud, str):
        return aud in accepted
    return (
        isinstance(aud, list)
        and bool(aud)
        and all(isinstance(value, str) and value in accepted for value in aud)
    )


def check_claims(
    claims: Mapping[str, object], *, client_id: str, issuer: str, now: float
) -> tuple[str, float]:
    """Check a verified assertion's claims for ``client_id``; return ``(jti, exp)``.

    ``issuer`` is this server's issuer identifier; the token endpoint is ``issuer`` +
    ``TOKEN_PATH``. Raises AssertionRejected with a short reason on the first problem.
    """
    if claims.get("iss") != client_id:
        raise AssertionRejected("iss must be the client_id")
    if claims.get("sub") != client_id:
        raise AssertionRejected("sub must be the client_id")
    if not _audience_ok(claims.get("aud"), frozenset({issuer, issuer + TOKEN_PATH})):
        raise AssertionRejected("aud must be this server's token endpoint URL or issuer")
    exp = _time(claims, "exp")
    if exp is None:
        raise AssertionRejected("exp is required")
    if exp + LEEWAY <= now:
        raise AssertionRejected("assertion has expired")
    if exp > now + MAX_LIFETIME + LEEWAY:
        raise AssertionRejected(f"exp is more than {MAX_LIFETIME} s in the future")
    iat = _time(claims, "iat")
    if iat is not None:
        if iat > now + LEEWAY:
            raise AssertionRejected("iat is in the future")
        if not iat < exp <= iat + MAX_LIFETIME:
            raise AssertionRejected(f"lifetime (exp - iat) must be 1..{MAX_LIFETIME} s")
    nbf = _time(claims, "nbf")
    if nbf is not None and (nbf > now + LEEWAY or nbf >= exp):
        raise AssertionRejected("assertion is not valid yet (nbf)")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
        raise AssertionRejected(f"jti is required (a string of 1..{MAX_JTI_LENGTH} characters)")
    return jti, exp


def _check_typ(header: Mapping[str, object]) -> None:
    typ = header.get("typ")
    if typ is None:
        return
    if not isinstance(typ, str) or typ.lower().removeprefix("application/") not in _ACCEPTED_TYPS:
        raise AssertionRejected("typ must be JWT or client-authentication+jwt")


def replay_store(svc: Services) -> ReplayStore:
    """Where assertion ``jti`` values are redeemed: the ``used_jtis`` table of the database
    every dojang instance shares (its primary key makes redemption atomic across workers)."""
    return SqlReplayStore(svc.db, clock=svc.clock)


def _replay_key(client_id: str, jti: str) -> str:
    # jti is chosen by the client: the key is namespaced per client (two clients may pick the
    # same jti) and hashed, so an assertion can never claim the record of a one-time token
    # dojang issued (which share the table), and any jti fits the column.
    digest = hashlib.sha256(f"{client_id}\x00{jti}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"client-assertion:{digest}"


async def authenticate_assertion(svc: Services, form: Mapping[str, str]) -> OIDCClient:
    """Authenticate an OIDC client by its ``client_assertion``; ``OAuthError`` otherwise.

    The caller has already refused requests that also carry another method. StoreUnavailable
    from the replay store propagates: without a record of the jti there is no authentication.
    """
    if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
        raise _invalid(f"client_assertion_type must be {CLIENT_ASSERTION_TYPE}")
    assertion = form.get("client_assertion", "")
    if not assertion:
        raise _invalid("client_assertion is required")
    if len(assertion) > MAX_ASSERTION_BYTES:
        raise _invalid("client_assertion is too large")
    try:
        header, payload, _, _ = decode_segments(assertion)
        unverified = parse_json_object(payload, "client assertion claims")
    except InvalidToken:
        raise _invalid("client_assertion is not a well-formed JWS") from None
    # RFC 7523 §3: sub is the client_id; it only picks the keys, nothing is trusted before the
    # signature verifies with one of them.
    client_id = unverified.get("sub")
    if not isinstance(client_id, str) or not client_id:
        raise _invalid()
    if "client_id" in form and form["client_id"] != client_id:
        # RFC 7521 §4.2: a client_id beside the assertion must identify the same client.
        raise _invalid("client_id does not match the client assertion")
    client = await svc.clients.get_oidc_client(client_id)
    if client is None or client.token_endpoint_auth_method != PRIVATE_KEY_JWT:
        log.info("client assertion for a client not registered for private_key_jwt")
        raise _invalid()
    try:
        keys = client_keys(client)
        _, verified = verify_compact(assertion, _select_key(keys, header), SIGNING_ALGORITHMS)
        claims = parse_json_object(verified, "client assertion claims")
    except InvalidToken as exc:
        log.info("client assertion for %s refused: %s", client_id, exc.code)
        raise _invalid() from None
    now = svc.clock.now()
    try:
        _check_typ(header)
        jti, exp = check_claims(claims, client_id=client_id, issuer=svc.settings.issuer, now=now)
    except AssertionRejected as exc:
        log.info("client assertion for %s refused: %s", client_id, exc)
        raise _invalid(f"client assertion rejected: {exc}") from None
    # Remembered until the assertion could no longer pass the exp check above.
    if not await replay_store(svc).redeem(_replay_key(client_id, jti), max(exp, now) + LEEWAY):
        log.warning("client assertion replayed for client %s", client_id)
        raise _invalid("client assertion rejected: it was already used (jti)")
    return client
