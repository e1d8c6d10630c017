"""The event bus: a signed, durable ``EventLog`` that also wakes up local readers.

The server publishes through ``await bus.append([Event, ...])`` (the ``EventLog`` method, so
every existing caller keeps working): the bus signs each event as a SET
(``dojang.events.secevent``), stores the signed form durably, and wakes every in-process
reader (the SSE feed) without them polling the store in a tight loop.

Sequence numbers (``Event.id``) are strictly increasing integers but not necessarily
contiguous (PostgreSQL sequences skip on rollback; Redis stream ids are time based), so a jump
in numbers is not by itself a gap. Gaps are detected by ``needs_reset``: the resume point is
beyond the log's newest id (the log was replaced or restored), or events after it have been
trimmed away.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Protocol

from dojang.errors import UnknownKey
from dojang.events.log import EventLog
from dojang.events.model import Event
from dojang.events.secevent import sign_event, verify_set
from dojang.jose import KeySet, decode_segments

__all__ = ["EventBus", "EventSigner", "Notifier"]


class EventSigner:
    """Signs events with the issuer's active key (rotation is the key set's business)."""

    def __init__(self, keyset: KeySet | Callable[[], KeySet], *, issuer: str) -> None:
        # A callable follows live key reloads (the server swaps its KeySet on SIGHUP).
        self._keyset = keyset
        self.issuer = issuer

    @property
    def keyset(self) -> KeySet:
        """The key set in force now."""
        return self._keyset if isinstance(self._keyset, KeySet) else self._keyset()

    def sign(self, events: list[Event]) -> list[Event]:
        """Return ``events`` with ``set_jws`` filled in (already-signed ones unchanged)."""
        key = self.keyset.active
        return [
            ev
            if ev.set_jws
            else dataclasses.replace(ev, set_jws=sign_event(ev, key, issuer=self.issuer))
            for ev in events
        ]

    def verify(self, token: str) -> Event:
        """Verify a SET against this issuer's own keys (InvalidToken if not ours)."""
        header = decode_segments(token)[0]
        kid = header.get("kid")
        if type(kid) is not str:
            raise UnknownKey("SET header has no kid")
        key = self.keyset.get(kid)
        return verify_set(token, key, issuer=self.issuer, algorithms=(key.alg,))


class Notifier:
    """A generation counter with an awaitable "it changed" signal (no lost wake-ups).

    Readers note ``generation`` *before* they query the store and then ``wait`` on that
    number: a publish that lands in between bumps the counter and the wait returns at once.
    """

    def __init__(self) -> None:
        self.generation = 0
        self._changed = asyncio.Event()

    def notify(self) -> None:
        """Wake every waiter; call on the event loop that serves the readers."""
        self.generation += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait(self, generation: int, max_wait: float) -> None:
        """Return when ``generation`` is out of date, or after ``max_wait`` seconds."""
        if self.generation != generation:
            return
        try:
            async with asyncio.timeout(max_wait):
                await self._changed.wait()
        except TimeoutError:
            return


class EventBus(EventLog, Protocol):
    """An ``EventLog`` that signs what it stores and lets local readers wait for news."""

    @property
    def generation(self) -> int:
        """Bumped on every publish this process sees; pass it to ``wait``."""
        ...

    async def wait(self, generation: int, max_wait: float) -> None:
        """Return when something was published after ``generation``, or after ``max_wait``."""
        ...

    async def needs_reset(self, after_id: int) -> bool:
        """True if a reader resuming after ``after_id`` may have missed events for good."""
        ...

    async def close(self) -> None:
        """Release connections and background tasks."""
        ...
