"""The server-side session record every store keeps."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

USER_AGENT_MAX = 512
"""User agents are truncated to this many characters before they are stored."""


@dataclass(slots=True)
class Session:
    """One logged-in browser (or client) session.

    The cookie value itself is never part of the record: ``key_hash`` (its SHA-256) is the
    store's key, ``sid`` the public name used in UIs, events and JWT claims. Times are Unix
    seconds from the injected clock.
    """

    key_hash: bytes = field(repr=False)
    sid: str
    user_id: str
    created_at: float
    last_seen: float
    auth_time: float
    idle_timeout: float
    absolute_expires_at: float
    # The synchronizer token is a secret: keep it out of reprs and logs.
    csrf_secret: str = field(repr=False)
    methods: tuple[str, ...] = ("pwd",)
    ip: str | None = None
    user_agent: str | None = None
    data: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def expires_at(self) -> float:
        """When the session dies unless it is used again: idle or absolute, whichever is first."""
        return expiry(self.last_seen, self.idle_timeout, self.absolute_expires_at)

    def is_expired(self, now: float) -> bool:
        """Tell whether the session is dead at ``now``."""
        return now >= self.expires_at


def expiry(last_seen: float, idle_timeout: float, absolute_expires_at: float) -> float:
    """``Session.expires_at`` from the three fields alone (for lookups that build no Session)."""
    return min(last_seen + idle_timeout, absolute_expires_at)


def encode_data(data: dict[str, Any]) -> str:
    """Encode session data the way every store keeps it (compact JSON, no NaN/Infinity).

    Raises ``TypeError`` or ``ValueError`` for anything that is not plain JSON.
    """
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def decode_data(text: str) -> dict[str, Any]:
    """Decode session data written by :func:`encode_data`."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("session data must be a JSON object")
    return value
