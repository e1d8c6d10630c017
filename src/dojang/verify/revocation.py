"""Revocation views: which otherwise-valid tokens must be refused right now.

A ``RevocationView`` answers one question for the verifier. ``DenyList`` is the in-memory
implementation that a push subscription (SSE or Redis Streams, see ``dojang.events``) feeds with
``session.revoked``, ``token.revoked`` and ``user.sessions_revoked`` events, and with
``key.retired`` events: a view that also has ``is_key_retired(kid)`` makes the verifier refuse
every token signed by a key retired at once (a compromised key), even while a cached JWKS still
lists it. Every entry carries
the ``exp`` of the longest token it can affect, and is forgotten after it: by then the tokens it
covered are expired and refused anyway, so the list stays as small as the live token window.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Mapping
from typing import Any, Literal, Protocol

from dojang.clock import SYSTEM_CLOCK, Clock

__all__ = ["DenyList", "RevocationView"]

_Kind = Literal["sid", "jti", "sub", "kid"]


class RevocationView(Protocol):
    """Anything that can tell whether a verified token was revoked."""

    def is_revoked(self, claims: Mapping[str, Any]) -> bool:
        """Return True if the token with these (already verified) claims is revoked.

        Semantics: revoked if its ``sid`` or ``jti`` is denied, or if its ``sub`` was revoked
        "before" a time later than the token's ``iat``. A view that cannot answer must raise
        (the verifier then fails closed), never return False.
        """
        ...


class DenyList:
    """Thread-safe in-memory deny sets keyed by ``sid``, ``jti`` and per-user cut-off time."""

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._sids: dict[str, float] = {}
        self._jtis: dict[str, float] = {}
        # sub -> (before, exp): tokens of sub issued before `before` are revoked until `exp`.
        self._users: dict[str, tuple[float, float]] = {}
        self._kids: dict[str, float] = {}
        self._expiry: list[tuple[float, _Kind, str]] = []

    def __len__(self) -> int:
        return len(self._sids) + len(self._jtis) + len(self._users) + len(self._kids)

    def add_sid(self, sid: str, exp: float) -> None:
        """Deny every token of session ``sid`` until ``exp``."""
        with self._lock:
            self._sids[sid] = max(exp, self._sids.get(sid, exp))
            self._schedule(exp, "sid", sid)

    def add_jti(self, jti: str, exp: float) -> None:
        """Deny the single token ``jti`` until ``exp``."""
        with self._lock:
            self._jtis[jti] = max(exp, self._jtis.get(jti, exp))
            self._schedule(exp, "jti", jti)

    def add_kid(self, kid: str, exp: float) -> None:
        """Deny every token signed by key ``kid`` until ``exp`` (a key retired at once)."""
        with self._lock:
            self._kids[kid] = max(exp, self._kids.get(kid, exp))
            self._schedule(exp, "kid", kid)

    def is_key_retired(self, kid: str) -> bool:
        """Return True if tokens signed by ``kid`` must be refused whatever the JWKS says."""
        return kid in self._kids

    def revoke_user_before(self, sub: str, before: float, exp: float) -> None:
        """Deny every token of ``sub`` issued before ``before``, remembered until ``exp``.

        A later cut-off supersedes an earlier one (it covers strictly more tokens).
        """
        with self._lock:
            old = self._users.get(sub)
            if old is not None:
                before, exp = max(before, old[0]), max(exp, old[1])
            self._users[sub] = (before, exp)
            self._schedule(exp, "sub", sub)

    def is_revoked(self, claims: Mapping[str, Any]) -> bool:
        """Return True if ``claims`` fall under any live deny entry."""
        # Plain dict reads are atomic under the GIL; the lock only guards writers, so the hot
        # path (nothing revoked) costs three lookups.
        sid = claims.get("sid")
        if type(sid) is str and sid in self._sids:
            return True
        jti = claims.get("jti")
        if type(jti) is str and jti in self._jtis:
            return True
        sub = claims.get("sub")
        cut = self._users.get(sub) if type(sub) is str else None
        if cut is not None:
            iat = claims.get("iat")
            # iat is whole seconds: a token minted in the same second as the cut-off is
            # treated as older (revoked) rather than risk letting a pre-logout token through.
            return not isinstance(iat, int | float) or iat < cut[0]
        return False

    def purge(self) -> int:
        """Forget entries whose ``exp`` has passed; return how many were dropped."""
        with self._lock:
            return self._purge_locked()

    def _schedule(self, exp: float, kind: _Kind, key: str) -> None:
        heapq.heappush(self._expiry, (exp, kind, key))
        self._purge_locked()

    def _purge_locked(self) -> int:
        now = self._clock.now()
        dropped = 0
        expiry = self._expiry
        while expiry and expiry[0][0] < now:
            _, kind, key = heapq.heappop(expiry)
            if kind == "sub":
                entry = self._users.get(key)
                if entry is not None and entry[1] < now:
                    del self._users[key]
                    dropped += 1
            else:
                table = {"sid": self._sids, "jti": self._jtis}.get(kind, self._kids)
                exp = table.get(key)
                if exp is not None and exp < now:
                    del table[key]
                    dropped += 1
        return dropped
