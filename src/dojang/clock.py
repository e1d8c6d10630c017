"""Injectable clocks, so expiry logic is tested without patching time."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the current Unix time in seconds."""

    def now(self) -> float:
        """Return the current time as Unix seconds."""
        ...


class SystemClock:
    """The real wall clock."""

    __slots__ = ()

    def now(self) -> float:
        """Return ``time.time()``."""
        return time.time()


class FrozenClock:
    """A clock that moves only when told to (tests, simulations)."""

    __slots__ = ("_t",)

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._t = float(start)

    def now(self) -> float:
        """Return the frozen time."""
        return self._t

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self._t += seconds

    def set(self, t: float) -> None:
        """Set the clock to ``t``."""
        self._t = float(t)


SYSTEM_CLOCK = SystemClock()
