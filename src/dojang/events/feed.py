"""The revocation feed as Server-Sent Events (WHATWG HTML §9.2), independent of any web framework.

Wire format, one frame per event::

    id: <seq>
    event: session.revoked | user.sessions_revoked | token.revoked | key.retired
    data: <SET compact JWS>

and, whenever the stream has been idle for ``heartbeat`` seconds (and once right after the
catch-up), a heartbeat whose ``id`` moves the client's resume point::

    id: <seq>
    event: heartbeat
    data: {"latest": <seq>}

A heartbeat promises: every unexpired event with an id up to ``latest`` has been sent on this
stream. So the client may resume from ``latest``; a ``latest`` *below* what the client already
holds means the server's log went backwards (restored, replaced) and the client must resync.

If the resume point can no longer be served (``EventBus.needs_reset``), the stream sends one
``reset`` event and ends; the client resyncs from ``GET /api/v1/revocations`` and reconnects
with the snapshot's ``last_id``::

    event: reset
    data: {"latest": <seq>, "snapshot": "/api/v1/revocations"}

Nothing is queued per client: each stream reads the log from its own cursor, so a slow client
only holds its cursor, and the HTTP layer drops it when a write stalls (it resumes later with
``Last-Event-ID``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Final

from dojang.events.bus import EventBus

__all__ = ["SNAPSHOT_PATH", "FeedOptions", "feed_frames", "sse_frame"]

SNAPSHOT_PATH: Final = "/api/v1/revocations"


@dataclass(frozen=True, slots=True)
class FeedOptions:
    """Tuning of the SSE feed."""

    heartbeat: float = 15.0
    """Seconds of silence before a heartbeat (clients treat ~3 missed ones as lost contact)."""
    max_streams: int = 1000
    """Concurrent streams per process; more get 503 and retry."""
    send_timeout: float = 10.0
    """A write that stalls this long drops the client (it resumes with Last-Event-ID)."""
    batch: int = 500
    """Events read from the log per query."""
    retry_ms: int = 1000
    """Reconnect delay suggested to EventSource clients (the SSE ``retry`` field)."""


def sse_frame(*, event: str, data: str, id: int | None = None) -> bytes:
    """One SSE frame. ``data`` must be a single line (SETs and our JSON always are)."""
    if "\n" in data or "\r" in data:
        raise ValueError("SSE data must be a single line")
    head = f"id: {id}\n" if id is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n".encode()


def _heartbeat(seq: int) -> bytes:
    return sse_frame(event="heartbeat", data=json.dumps({"latest": seq}), id=seq)


async def feed_frames(
    bus: EventBus, after: int, *, options: FeedOptions, now: Callable[[], float]
) -> AsyncIterator[bytes]:
    """Yield SSE frames for a client resuming after ``after`` (0 = from the oldest held)."""
    if await bus.needs_reset(after):
        latest = await bus.last_id()
        yield sse_frame(
            event="reset", data=json.dumps({"latest": latest, "snapshot": SNAPSHOT_PATH})
        )
        return
    yield f"retry: {options.retry_ms}\n\n".encode()
    loop = asyncio.get_running_loop()
    cursor = after
    last_sent = -float("inf")
    while True:
        generation = bus.generation
        # Read the newest id *before* the query: everything up to it is visible to the query,
        # so once the query comes back short the stream has sent all unexpired events to `top`.
        top = await bus.last_id()
        events = await bus.since(cursor, now=now(), limit=options.batch)
        for ev in events:
            yield sse_frame(event=ev.kind, data=ev.set_jws, id=ev.id)
            cursor = ev.id
        if events:
            last_sent = loop.time()
        if len(events) == options.batch:
            continue
        cursor = max(cursor, top)
        idle = loop.time() - last_sent
        if idle >= options.heartbeat:
            yield _heartbeat(cursor)
            last_sent = loop.time()
            idle = 0.0
        await bus.wait(generation, max_wait=options.heartbeat - idle)
