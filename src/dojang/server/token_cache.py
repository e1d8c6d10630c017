"""Access tokens minted by ``/auth/check?aud=``, cached per session and audience.

A token is reused until shortly before it expires (signing is the expensive part of the
forward-auth path) and dropped the moment its session ends.
"""

from __future__ import annotations

from collections import OrderedDict

REFRESH_MARGIN = 10.0  # seconds before exp at which a fresh token is minted instead


class TokenCache:
    """A bounded LRU of ``(sid, audience, scope) -> (token, exp)``."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._max = max_entries
        self._entries: OrderedDict[tuple[str, str, str], tuple[str, float]] = OrderedDict()
        # sid -> its keys, so ending a session does not scan the whole cache.
        self._by_sid: dict[str, set[tuple[str, str, str]]] = {}

    def get(self, sid: str, audience: str, scope: str, now: float) -> str | None:
        """A cached token still valid for at least ``REFRESH_MARGIN`` seconds, or None."""
        key = (sid, audience, scope)
        entry = self._entries.get(key)
        if entry is None:
            return None
        token, exp = entry
        if exp - now < REFRESH_MARGIN:
            self._forget(key)
            return None
        self._entries.move_to_end(key)
        return token

    def put(self, sid: str, audience: str, scope: str, token: str, exp: float) -> None:
        """Remember ``token`` (expiring at ``exp``) for this session and audience."""
        key = (sid, audience, scope)
        self._entries[key] = (token, exp)
        self._entries.move_to_end(key)
        self._by_sid.setdefault(sid, set()).add(key)
        while len(self._entries) > self._max:
            self._forget(next(iter(self._entries)))

    def drop_session(self, sid: str) -> None:
        """Forget every token of an ended session."""
        for key in self._by_sid.pop(sid, ()):
            self._entries.pop(key, None)

    def _forget(self, key: tuple[str, str, str]) -> None:
        self._entries.pop(key, None)
        keys = self._by_sid.get(key[0])
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_sid[key[0]]

    def __len__(self) -> int:
        return len(self._entries)
