"""Event log and bus backends, chosen by ``Settings.event_bus``: ``local`` or ``redis://…``."""

from __future__ import annotations

from dojang.clock import Clock
from dojang.events.backends.local import LocalEventBus
from dojang.events.backends.sql import SqlEventLog
from dojang.events.bus import EventBus, EventSigner
from dojang.storage.db import Database

__all__ = ["LocalEventBus", "SqlEventLog", "open_event_bus"]


def open_event_bus(
    url: str, *, db: Database, signer: EventSigner, clock: Clock, retention: float
) -> EventBus:
    """``local`` → signed SQL log with in-process fan-out; ``redis://…`` → Redis Stream."""
    if url == "local":
        return LocalEventBus(SqlEventLog(db), signer)
    if url.startswith(("redis://", "rediss://")):
        # Imported here so the embedded default never needs a Redis client at import time.
        from dojang.events.backends.redis import RedisEventBus

        return RedisEventBus(url, signer, clock=clock, retention=retention)
    raise ValueError(f"event bus {url!r:.60}: expected 'local' or a redis:// URL")
