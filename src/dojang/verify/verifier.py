"""``Verifier``: the strict access-token check business servers embed (sync and async).

Order of checks, cheapest-to-reject first but never trusting a claim before its signature:

1. compact JWS shape, size cap, strict header (``dojang.jose.decode_segments``);
2. ``typ`` exactly the expected kind (RFC 8725 §3.11), so a one-time token can never pass as an
   access token or the reverse;
3. key chosen by ``kid`` only (a kid the revocation view reports retired at once is refused
   before any lookup; a retired key past its keep-until time is absent); the key's bound
   ``alg`` must equal the header's and be in the allow-list (RFC 8725 §3.1); signature;
4. payload: a strict JSON object; claim policy (``dojang.verify.claims``);
5. revocation view (``sid``, ``jti``, user cut-off).

Any failure raises an ``InvalidToken`` subclass. Anything else escaping is a bug, so it is
caught at the boundary, logged to ``dojang.security`` (without the token) and turned into a
plain ``InvalidToken``: an unexpected state must deny, never allow.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from dojang.clock import SYSTEM_CLOCK, Clock
from dojang.errors import (
    AlgorithmNotAllowed,
    BadSignature,
    ConfigError,
    InvalidToken,
    MalformedToken,
    RevokedToken,
    UnknownKey,
    WrongTokenType,
)
from dojang.jose import ALGORITHMS, Key, KeySet, parse_json_object
from dojang.jose.jws import decode_header, decode_standard, split_compact
from dojang.verify.claims import SUBJECT_KINDS, SubjectKind, check_claims
from dojang.verify.jwks import RemoteJwks, StaticKeys, static_keys
from dojang.verify.revocation import RevocationView
from dojang.verify.subscription import Subscription, subscribe

if TYPE_CHECKING:
    # Only for the annotation: prometheus_client is imported when the application opts in.
    from dojang.verify.metrics import VerifierMetrics

__all__ = ["Verifier"]

_log = logging.getLogger("dojang.security")
_MEDIA_PREFIX = "application/"
# Distinct headers remembered per Verifier (an issuer has a handful: one per key and typ).
_HEADERS_KEPT = 64


def _normalize_typ(typ: str) -> str:
    # RFC 7515 §4.1.9: media type names compare case-insensitively and "application/" may be
    # omitted; nothing else (no parameters, no suffix games) is tolerated.
    typ = typ.lower()
    return typ[len(_MEDIA_PREFIX) :] if typ.startswith(_MEDIA_PREFIX) else typ


class Verifier:
    """Verify dojang access tokens (or any explicitly typed kind) for one audience.

    ``jwks`` is a JWKS mapping, a ``KeySet``, or an https URL of a JWKS (plain http only to
    loopback). ``algorithms`` is the allow-list; every key is also bound to its own ``alg``.
    ``revocations`` is a ``RevocationView`` such as ``DenyList``, or the URL of the issuer's
    revocation feed (``https://…/events/revocations`` or ``redis://…?stream=…``): the Verifier
    then runs a ``dojang.verify.subscription.Subscription`` in a daemon thread (waiting up to
    ``http_timeout`` for its first sync) and refuses tokens with ``RevocationsUnavailable``
    while the feed is out of sync or out of touch for longer than ``revocations_max_stale``
    (default ``max_lifetime``). Call ``close()`` (or use ``with Verifier(...)``) to stop it.
    A view that also has ``is_key_retired(kid)`` (``DenyList`` and the feed do, from
    ``key.retired`` events) makes every token signed by such a key fail with RevokedToken.
    ``verify``/``averify`` return the claims or raise InvalidToken. ``metrics`` (a
    ``dojang.verify.metrics.VerifierMetrics``) opts into Prometheus counters and gauges.

    ``subject_kind`` makes the API accept only ``"user"`` tokens (minted from a session, or
    exchanged on a user's behalf: they carry ``sid``) or only ``"service"`` tokens
    (``client_credentials``: no ``sid``); the other kind raises ``WrongSubjectKind``. Both
    kinds share ``typ: at+jwt``, so ``typ`` alone cannot make this distinction.

    ``http_timeout`` bounds each JWKS fetch as a whole (connect, headers and body together),
    not only each phase: an endpoint that hangs or drips bytes fails within it.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks: Mapping[str, object] | str | KeySet,
        algorithms: Collection[str] = ("EdDSA", "ES256"),
        typ: str = "at+jwt",
        leeway: float = 5,
        max_lifetime: float = 900,
        clock: Clock = SYSTEM_CLOCK,
        revocations: RevocationView | str | None = None,
        revocations_max_stale: float | None = None,
        jwks_cooldown: float = 30,
        jwks_max_stale: float = 3600,
        http_timeout: float = 3,
        metrics: VerifierMetrics | None = None,
        subject_kind: SubjectKind | None = None,
    ) -> None:
        problems = _config_problems(
            issuer=issuer,
            audience=audience,
            algorithms=algorithms,
            typ=typ,
            leeway=leeway,
            max_lifetime=max_lifetime,
            jwks_cooldown=jwks_cooldown,
            jwks_max_stale=jwks_max_stale,
            http_timeout=http_timeout,
        )
        if isinstance(revocations, str):
            if not revocations.startswith(("https://", "http://", "redis://", "rediss://")):
                problems.append(
                    "revocations: expected an https:// feed URL, a redis:// stream URL, "
                    "a RevocationView such as dojang.verify.DenyList, or None"
                )
        elif revocations is not None and not callable(getattr(revocations, "is_revoked", None)):
            problems.append("revocations: must provide is_revoked(claims) -> bool")
        if not isinstance(jwks, str | Mapping | KeySet):
            problems.append("jwks: must be a JWKS mapping, a KeySet or an https URL")
        if subject_kind is not None and subject_kind not in SUBJECT_KINDS:
            problems.append(
                f"subject_kind: must be 'user', 'service' or None, got {subject_kind!r}"
            )
        if problems:
            raise ConfigError(problems)
        self.issuer = issuer
        self.audience = audience
        self.algorithms = frozenset(algorithms)
        self.typ = typ
        self._typ = _normalize_typ(typ)
        self.leeway = float(leeway)
        self.max_lifetime = float(max_lifetime)
        self.subject_kind: SubjectKind | None = subject_kind
        self._clock = clock
        self._headers: dict[bytes, tuple[str, str]] = {}
        self._keys: StaticKeys | RemoteJwks
        if isinstance(jwks, str):
            self._keys = RemoteJwks(
                jwks,
                clock=clock,
                cooldown=jwks_cooldown,
                max_stale=jwks_max_stale,
                timeout=http_timeout,
            )
        else:
            self._keys = static_keys(jwks)
        self.subscription: Subscription | None = None
        self._revocations: RevocationView | None
        if isinstance(revocations, str):
            self.subscription = subscribe(
                revocations,
                keys=self._keys,
                issuer=issuer,
                algorithms=self.algorithms,
                clock=clock,
                max_stale=self.max_lifetime
                if revocations_max_stale is None
                else float(revocations_max_stale),
                timeout=float(http_timeout),
            )
            self.subscription.start()
            # Best effort: most callers verify right away; until the first sync completes
            # every token is refused (fail closed), so give it a moment here.
            self.subscription.wait_synced(float(http_timeout))
            self._revocations = self.subscription
        else:
            self._revocations = revocations
        # Optional part of the view: a RevocationView written before key.retired existed
        # need not have it.
        key_check = getattr(self._revocations, "is_key_retired", None)
        self._key_retired: Callable[[str], bool] | None = key_check if callable(key_check) else None
        # Set by VerifierMetrics.attach; None keeps the hot path at one identity test.
        self.metrics: VerifierMetrics | None = None
        if metrics is not None:
            metrics.attach(self)

    @property
    def revocations(self) -> RevocationView | None:
        """The revocation view consulted last (the subscription when following a feed)."""
        return self._revocations

    def close(self) -> None:
        """Stop the revocation subscription, if any (the Verifier then refuses tokens)."""
        if self.subscription is not None:
            self.subscription.close()

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Verifier(issuer={self.issuer!r}, audience={self.audience!r}, typ={self.typ!r})"

    # -- public API -----------------------------------------------------------------------

    def verify(self, token: str) -> dict[str, Any]:
        """Return the verified claims of ``token`` or raise an InvalidToken subclass."""
        try:
            kid, alg, payload, signature, signing_input = self._parse(token)
            keys = self._keys
            now = self._clock.now()
            if isinstance(keys, StaticKeys):
                # A retired key past its keep-until time is absent, by our clock.
                key = keys.keyset.get(kid, now=now)
            else:
                found = keys.lookup(kid)
                if found is None:
                    keys.refresh()
                    found = keys.final().get(kid)
                key = found
            claims = self._finish(alg, key, payload, signature, signing_input, now)
        except InvalidToken as exc:
            if self.metrics is not None:
                self.metrics.count_rejected(exc.code)
            raise
        except Exception as exc:  # fail closed; see module docstring
            raise self._denied(exc) from None
        if self.metrics is not None:
            self.metrics.count_verified()
        return claims

    async def averify(self, token: str) -> dict[str, Any]:
        """Async twin of ``verify``; JWKS fetches do not block the event loop."""
        try:
            kid, alg, payload, signature, signing_input = self._parse(token)
            keys = self._keys
            now = self._clock.now()
            if isinstance(keys, StaticKeys):
                # A retired key past its keep-until time is absent, by our clock.
                key = keys.keyset.get(kid, now=now)
            else:
                found = keys.lookup(kid)
                if found is None:
                    await keys.arefresh()
                    found = keys.final().get(kid)
                key = found
            claims = self._finish(alg, key, payload, signature, signing_input, now)
        except InvalidToken as exc:
            if self.metrics is not None:
                self.metrics.count_rejected(exc.code)
            raise
        except Exception as exc:  # fail closed; see module docstring
            raise self._denied(exc) from None
        if self.metrics is not None:
            self.metrics.count_verified()
        return claims

    # -- steps ----------------------------------------------------------------------------

    def _denied(self, exc: Exception) -> InvalidToken:
        denied = _unexpected(exc)
        if self.metrics is not None:
            self.metrics.count_rejected(denied.code)
        return denied

    def _parse(self, token: str) -> tuple[str, str, bytes, bytes, bytes]:
        """Steps 1-2 and the retired-kid check: ``(kid, alg, payload, signature, input)``."""
        if type(token) is not str:
            raise MalformedToken("token must be a string")
        header_b64, payload_b64, signature_b64, signing_input = split_compact(token)
        # Headers that passed every check below are remembered as (kid, alg) by their exact
        # text, so the common case skips base64, JSON and the typ comparison. Checks run in
        # the same order either way, so a token meets the same error whether or not its
        # header was seen before.
        known = self._headers.get(header_b64)
        if known is None:
            header = decode_header(header_b64)  # its errors come before the other segments'
        payload = decode_standard(payload_b64, "payload")
        signature = decode_standard(signature_b64, "signature")
        if known is None:
            known = self._admit_header(header_b64, header)
        kid, alg = known
        if self._key_retired is not None and self._key_retired(kid):
            # key.retired: a compromised key; a cached JWKS may still list it.
            raise RevokedToken("token is signed by a retired key")
        return kid, alg, payload, signature, signing_input

    def _admit_header(self, header_b64: bytes, header: Mapping[str, object]) -> tuple[str, str]:
        typ = header.get("typ")
        if typ is None:
            raise WrongTokenType("header has no typ")
        if type(typ) is not str or _normalize_typ(typ) != self._typ:
            raise WrongTokenType("token is not of the expected type")
        kid = header.get("kid")
        if type(kid) is not str:
            # Never "try every key" (or the only key) when kid is absent: explicit selection.
            raise UnknownKey("header has no kid")
        alg = header["alg"]
        if type(alg) is not str:  # decode_header already refuses this; never remember it
            raise MalformedToken("header 'alg' is missing or not a string")
        if len(self._headers) >= _HEADERS_KEPT:
            self._headers.clear()  # bounded: hostile headers cannot grow it
        self._headers[header_b64] = (kid, alg)
        return kid, alg

    def _finish(
        self,
        alg: str,
        key: Key,
        payload: bytes,
        signature: bytes,
        signing_input: bytes,
        now: float,
    ) -> dict[str, Any]:
        # RFC 8725 §3.1: the key's bound alg decides; the header may only agree with it.
        if alg != key.alg or alg not in self.algorithms:
            raise AlgorithmNotAllowed("alg is not allowed for this key")
        if not key.verify(signature, signing_input):
            raise BadSignature("signature does not verify")
        claims = parse_json_object(payload, "payload")
        check_claims(
            claims,
            issuer=self.issuer,
            audience=self.audience,
            now=now,
            leeway=self.leeway,
            max_lifetime=self.max_lifetime,
            subject_kind=self.subject_kind,
        )
        revocations = self._revocations
        if revocations is not None and revocations.is_revoked(claims):
            raise RevokedToken("token has been revoked")
        return claims


def _unexpected(exc: Exception) -> InvalidToken:
    # Only the exception type is logged: messages from lower layers might quote input.
    _log.error("unexpected %s while verifying a token; denied", type(exc).__name__)
    return InvalidToken("token could not be verified")


def _config_problems(
    *,
    issuer: object,
    audience: object,
    algorithms: object,
    typ: object,
    leeway: object,
    max_lifetime: object,
    jwks_cooldown: object,
    jwks_max_stale: object,
    http_timeout: object,
) -> list[str]:
    problems: list[str] = []
    if not isinstance(issuer, str) or not issuer:
        problems.append("issuer: must be a non-empty string (the issuer's public URL)")
    if not isinstance(audience, str) or not audience:
        problems.append("audience: must be a non-empty string naming this service")
    if isinstance(algorithms, str) or not isinstance(algorithms, Collection) or not algorithms:
        problems.append(f"algorithms: must be a non-empty collection of {sorted(ALGORITHMS)}")
    else:
        unknown = sorted(str(a) for a in algorithms if a not in ALGORITHMS)
        if unknown:
            problems.append(f"algorithms: {unknown} not supported; allowed: {sorted(ALGORITHMS)}")
    if not isinstance(typ, str) or not typ:
        problems.append("typ: must be a non-empty string such as 'at+jwt'")
    for name, value, low, high in (
        ("leeway", leeway, 0.0, 300.0),
        ("max_lifetime", max_lifetime, 1.0, 7 * 86_400.0),
        ("jwks_cooldown", jwks_cooldown, 0.0, 86_400.0),
        ("jwks_max_stale", jwks_max_stale, 1.0, 7 * 86_400.0),
        ("http_timeout", http_timeout, 0.1, 60.0),
    ):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not math.isfinite(float(value)) or not low <= float(value) <= high:  # type: ignore[arg-type]
            problems.append(f"{name}: must be a number between {low:g} and {high:g}, got {value!r}")
    return problems
