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

    # 2065: far ahead of the wall clock, because stores that expire by themselves (Redis
    # PEXPIREAT) apply these instants as real time; 1.8e9 (January 2027) would have made every
    # test session expire on arrival from then on. Below 2**32 so whole-second fields fit.
    DEFAULT_START = 3_000_000_000.0

    def __init__(self, start: float = DEFAULT_START) -> None:
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
