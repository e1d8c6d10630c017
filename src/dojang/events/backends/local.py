"""``local`` bus: the SQL event log, signed, with in-process fan-out (the embedded default)."""

from __future__ import annotations

from dojang.events.backends.sql import SqlEventLog
from dojang.events.bus import EventSigner, Notifier
from dojang.events.model import Event


class LocalEventBus:
    """``EventBus`` over ``SqlEventLog``: durable in the database, woken in-process.

    With several worker processes on one database, a reader in another process is not woken
    by ``notify``; the SSE feed therefore also re-reads the log every ``poll_interval``
    seconds (one indexed query per stream, not a tight loop).
    """

    poll_interval = 1.0

    def __init__(self, log: SqlEventLog, signer: EventSigner) -> None:
        self.log = log
        self.signer = signer
        self._notifier = Notifier()

    @property
    def generation(self) -> int:
        """See ``EventBus.generation``."""
        return self._notifier.generation

    async def append(self, events: list[Event]) -> list[Event]:
        """Sign, store atomically, then wake local readers."""
        if not events:
            return []
        stored = await self.log.append(self.signer.sign(events))
        self._notifier.notify()
        return stored

    async def since(self, after_id: int, *, now: float, limit: int = 1000) -> list[Event]:
        """Unexpired events after ``after_id``; rows written before signing get signed now."""
        return self.signer.sign(await self.log.since(after_id, now=now, limit=limit))

    async def last_id(self) -> int:
        """Newest id (0 when empty)."""
        return await self.log.last_id()

    async def purge(self, now: float) -> int:
        """Forget expired events."""
        return await self.log.purge(now)

    async def wait(self, generation: int, max_wait: float) -> None:
        """See ``EventBus.wait``."""
        await self._notifier.wait(generation, min(max_wait, self.poll_interval))

    async def needs_reset(self, after_id: int) -> bool:
        """Resume point beyond the newest id (log replaced) or before purged rows."""
        if after_id <= 0:
            return False
        last = await self.log.last_id()
        if after_id > last:
            return True
        # Ids are strictly increasing and purge keeps the newest row, so rows between the
        # resume point and the oldest one held were purged (expired) while the reader was away.
        return after_id < await self.log.first_id() - 1

    async def close(self) -> None:
        """Nothing of its own to release (the database belongs to the services)."""
