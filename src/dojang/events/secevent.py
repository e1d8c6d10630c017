"""Revocation events as Security Event Tokens (RFC 8417).

Every event dojang publishes travels as a compact JWS signed with the issuer's active key::

    header  {"alg": <key alg>, "kid": <key id>, "typ": "secevent+jwt"}
    claims  {"iss": <issuer>, "iat": <int>, "jti": <random>,
             "events": {"https://dojang.dev/event/<kind>": {<payload>, "exp": <float>}}}

Event type URIs (one per kind, exactly one per SET):

* ``https://dojang.dev/event/session.revoked``        payload ``{sid, exp}``
* ``https://dojang.dev/event/user.sessions_revoked``  payload ``{sub, before, exp}``
* ``https://dojang.dev/event/token.revoked``          payload ``{jti, exp}``
* ``https://dojang.dev/event/key.retired``            payload ``{kid, exp}``

``exp`` sits inside the event payload rather than at the top level: RFC 8417 §2.2 advises
against a top-level ``exp`` on SETs (it means "reject the SET", not "forget the fact"), and it
keeps a SET from ever resembling an access token (no ``aud``, ``sub`` or ``exp`` claims at the
top, and a distinct ``typ``, RFC 8417 §4.3). The position in a log (SSE ``id``, stream id) is
transport metadata and is *not* signed: a party who can write to the transport can replay or
reorder SETs, which is harmless because every event only ever adds a denial; it cannot forge
or undo one.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Collection
from typing import Any, Final

from dojang.errors import InvalidClaims, WrongTokenType
from dojang.events.model import EVENT_KINDS, Event
from dojang.jose import Key, parse_json_object, sign_compact, verify_compact

__all__ = ["EVENT_URI_PREFIX", "SET_TYP", "event_uri", "sign_event", "verify_set"]

SET_TYP: Final = "secevent+jwt"
"""RFC 8417 §2.3: the media type of a SET, compared exactly (no ``application/`` games)."""

EVENT_URI_PREFIX: Final = "https://dojang.dev/event/"

_URI_TO_KIND: Final = {EVENT_URI_PREFIX + kind: kind for kind in EVENT_KINDS}
_PAYLOAD_KEYS: Final[dict[str, frozenset[str]]] = {
    "session.revoked": frozenset({"sid"}),
    "user.sessions_revoked": frozenset({"sub", "before"}),
    "token.revoked": frozenset({"jti"}),
    "key.retired": frozenset({"kid"}),
}
_MAX_ID_CHARS: Final = 256


def event_uri(kind: str) -> str:
    """The event type URI of ``kind`` (see the module docstring)."""
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown event kind {kind!r}")
    return EVENT_URI_PREFIX + kind


def sign_event(event: Event, key: Key, *, issuer: str) -> str:
    """Return ``event`` as a SET signed with ``key`` (the issuer's active key)."""
    payload: dict[str, Any] = {**event.data, "exp": event.exp}
    claims = {
        "iss": issuer,
        # Millisecond precision (RFC 7519 NumericDate may be fractional): subscribers measure
        # how long the revocation took to reach them from this value.
        "iat": round(event.created_at, 3),
        # RFC 8417 §2.2: jti uniquely identifies the SET (lets subscribers spot replays).
        "jti": secrets.token_urlsafe(16),
        "events": {event_uri(event.kind): payload},
    }
    return sign_compact(claims, key, typ=SET_TYP)


def verify_set(token: str, key: Key, *, issuer: str, algorithms: Collection[str]) -> Event:
    """Verify a SET with ``key`` and return the event it carries (``id`` 0, ``set_jws`` set).

    Raises an ``InvalidToken`` subclass when the signature, ``typ``, ``iss`` or the event
    structure is wrong. The caller picks ``key`` by the header's ``kid`` from its trusted JWKS.
    """
    header, body = verify_compact(token, key, algorithms)
    # Exact match: a SET must never be confused with another JWT kind (RFC 8725 §3.11).
    if header.get("typ") != SET_TYP:
        raise WrongTokenType("not a security event token")
    claims = parse_json_object(body, "payload")
    if claims.get("iss") != issuer:
        raise InvalidClaims("SET issuer does not match")
    iat = claims.get("iat")
    if not _is_time(iat):
        raise InvalidClaims("SET iat missing or not a number")
    events = claims.get("events")
    # This profile carries exactly one event per SET (RFC 8417 §2.2 allows several, but one
    # keeps ordering and resume positions unambiguous).
    if not isinstance(events, dict) or len(events) != 1:
        raise InvalidClaims("SET must carry exactly one event")
    ((uri, payload),) = events.items()
    kind = _URI_TO_KIND.get(uri)
    if kind is None:
        raise InvalidClaims("SET event type is not a dojang revocation event")
    if not isinstance(payload, dict):
        raise InvalidClaims("SET event payload must be an object")
    exp = payload.get("exp")
    if not _is_time(exp):
        raise InvalidClaims("SET event exp missing or not a number")
    data: dict[str, Any] = {}
    for name in _PAYLOAD_KEYS[kind]:
        value = payload.get(name)
        if name == "before":
            if not _is_time(value):
                raise InvalidClaims("SET event 'before' must be a number")
        elif type(value) is not str or not value or len(value) > _MAX_ID_CHARS:
            raise InvalidClaims(f"SET event {name!r} must be a short non-empty string")
        data[name] = value
    return Event(kind, data, float(exp), float(iat), 0, token)  # type: ignore[arg-type]


def _is_time(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )
