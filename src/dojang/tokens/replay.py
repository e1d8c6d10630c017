"""Replay protection for one-time tokens: record each ``jti`` on first use.

The contract every store keeps: ``redeem(jti, exp)`` returns True exactly once per ``jti``, even
when many redemptions race (atomic test-and-set), and False for every later call until ``exp``
has passed. After ``exp`` the verifier refuses the token anyway, so the record may be dropped.

Redemption is keyed on the ``jti`` claim, never on the token bytes: an ECDSA signature can be
re-spelled as (r, n - s) without the key, so the same token has several valid encodings.
"""

from __future__ import annotations

import asyncio
import heapq
from typing import Protocol

from dojang.clock import SYSTEM_CLOCK, Clock

__all__ = ["MemoryReplayStore", "ReplayStore"]


class ReplayStore(Protocol):
    """Where redeemed one-time token ids are remembered."""

    async def redeem(self, jti: str, exp: float) -> bool:
        """Record ``jti`` until ``exp``; return True the first time only (atomically).

        Implementations raise ``dojang.errors.StoreUnavailable`` when the store cannot answer;
        they never report a token as fresh without having recorded it.
        """
        ...


class MemoryReplayStore:
    """An in-process store, safe for concurrent coroutines; one worker process only.

    Expired records are purged as new ones arrive (a heap ordered by ``exp``), so memory stays
    bounded by the tokens that are still valid.
    """

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._used: dict[str, float] = {}
        self._expiry: list[tuple[float, str]] = []
        self._lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._used)

    async def redeem(self, jti: str, exp: float) -> bool:
        """Record ``jti`` until ``exp``; True on first use only."""
        # No await between the check and the insert, so this is atomic on one event loop; the
        # lock keeps it so if a future version awaits (e.g. to persist).
        async with self._lock:
            self._purge()
            if jti in self._used:
                return False
            self._used[jti] = exp
            heapq.heappush(self._expiry, (exp, jti))
            return True

    def _purge(self) -> None:
        now = self._clock.now()
        expiry = self._expiry
        while expiry and expiry[0][0] < now:
            exp, jti = heapq.heappop(expiry)
            if self._used.get(jti) == exp:
                del self._used[jti]
