"""ID tokens and logout tokens: the two JWT kinds the OIDC provider adds.

Explicit typing (RFC 8725 §3.11) keeps every kind apart: ID tokens are ``typ: JWT`` (OIDC
Core §2 defines no media type; the value is what RPs expect), logout tokens are
``typ: logout+jwt`` (Back-Channel Logout 1.0 §2.4), access tokens stay ``at+jwt``. dojang's
``Verifier`` checks ``typ`` exactly, so an ID token is refused where an access token is
expected and the other way round (``parse_id_token_hint`` only takes ``JWT``).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any, Final

from dojang.errors import InvalidToken
from dojang.jose import KeySet, parse_json_object, sign_compact, verify_compact

ID_TOKEN_TYP: Final = "JWT"  # noqa: S105 - a media type, not a secret
LOGOUT_TOKEN_TYP: Final = "logout+jwt"  # noqa: S105 - a media type
ID_TOKEN_TTL: Final = 300  # OIDC Core §2 leaves it to us; five minutes is plenty for a login
LOGOUT_TOKEN_TTL: Final = 120  # BCL 1.0 §2.4 recommends at most two minutes
BACKCHANNEL_EVENT: Final = "http://schemas.openid.net/event/backchannel-logout"
# OIDC Core §2 "acr": "0" says honestly that a password session is not ISO 29115 level 1+.
ACR: Final = "0"


def id_token(
    keyset: KeySet,
    *,
    issuer: str,
    client_id: str,
    sub: str,
    sid: str,
    auth_time: float,
    amr: Sequence[str],
    now: float,
    nonce: str | None = None,
) -> str:
    """Mint an ID token (OIDC Core §2) for ``client_id``, signed by the active key."""
    iat = int(now)
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": sub,
        "aud": client_id,
        "azp": client_id,
        "exp": iat + ID_TOKEN_TTL,
        "iat": iat,
        "jti": secrets.token_urlsafe(16),
        "auth_time": int(auth_time),
        "acr": ACR,
        "amr": list(amr),
        "sid": sid,
    }
    if nonce is not None:
        claims["nonce"] = nonce  # §3.1.3.7 step 11: the RP compares it with what it sent
    return sign_compact(claims, keyset.active, typ=ID_TOKEN_TYP)


def logout_token(
    keyset: KeySet, *, issuer: str, client_id: str, sub: str, sid: str, now: float
) -> str:
    """Mint a Back-Channel Logout token (BCL 1.0 §2.4): events + sid, never a nonce."""
    iat = int(now)
    claims = {
        "iss": issuer,
        "sub": sub,
        "aud": client_id,
        "iat": iat,
        "exp": iat + LOGOUT_TOKEN_TTL,
        "jti": secrets.token_urlsafe(16),
        "events": {BACKCHANNEL_EVENT: {}},
        "sid": sid,
    }
    return sign_compact(claims, keyset.active, typ=LOGOUT_TOKEN_TYP)


def parse_id_token_hint(keyset: KeySet, token: str, *, issuer: str) -> dict[str, Any]:
    """Verify an ``id_token_hint`` we issued (RP-Initiated Logout 1.0 §2).

    Signature, ``typ: JWT`` and ``iss`` are checked; ``exp`` is not, because the spec lets an
    RP send an expired ID token as a hint. Raises ``InvalidToken``.
    """
    header, payload = verify_compact(token, keyset, ("EdDSA", "ES256"))
    if header.get("typ") != ID_TOKEN_TYP:
        raise InvalidToken("id_token_hint is not an ID token")
    claims = parse_json_object(payload, "payload")
    if claims.get("iss") != issuer:
        raise InvalidToken("id_token_hint was not issued here")
    for name in ("sub", "aud", "sid"):
        if not isinstance(claims.get(name), str):
            raise InvalidToken(f"id_token_hint has no {name}")
    return claims
