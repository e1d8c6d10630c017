"""The event log protocol: append-only, ordered, resumable, bounded by ``exp``."""

from __future__ import annotations

from typing import Protocol

from dojang.events.model import Event


class EventLog(Protocol):
    """A durable, ordered log of events that subscribers resume from by id."""

    async def append(self, events: list[Event]) -> list[Event]:
        """Append events atomically (all or none); return them with their ids."""
        ...

    async def since(self, after_id: int, *, now: float, limit: int = 1000) -> list[Event]:
        """Events with id > ``after_id`` that have not yet expired, oldest first."""
        ...

    async def last_id(self) -> int:
        """The id of the newest event (0 for an empty log)."""
        ...

    async def purge(self, now: float) -> int:
        """Forget expired events; return how many."""
        ...
