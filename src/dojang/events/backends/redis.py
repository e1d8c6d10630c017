"""``redis`` bus: signed events in a Redis Stream (scale-out deployments).

* Publish: ``XADD`` inside ``MULTI``/``EXEC`` (all events of one call or none), each entry
  ``{set: <SET>, kind, exp}``; ``kind``/``exp`` are unsigned hints for the server's own
  filtering, subscribers trust only the SET. Every ``XADD`` trims with ``MINID ~`` at
  now - ``retention`` (the longest lifetime of any token an event can affect), so the stream
  holds exactly the window that can still matter and never grows without bound.
* Sequence numbers: a stream id ``<ms>-<n>`` maps to the integer ``ms << 20 | n`` (below
  2**62, strictly increasing with the stream), so the SSE feed and the snapshot speak one
  integer ``id`` whatever the backend.
* Wake-ups: one tailer task per process blocks in ``XREAD`` and wakes local readers, so N SSE
  streams cost one blocking connection, not N.

The stream name comes from the URL's ``stream`` query parameter (default ``dojang:events``):
``redis://host:6379/0?stream=dojang:events``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from dojang.clock import Clock
from dojang.errors import InvalidToken, StoreUnavailable
from dojang.events.bus import EventSigner, Notifier
from dojang.events.model import Event

__all__ = [
    "DEFAULT_STREAM",
    "RedisEventBus",
    "seq_to_stream_id",
    "split_stream_url",
    "stream_id_to_seq",
]

log = logging.getLogger("dojang.events")
security = logging.getLogger("dojang.security")

DEFAULT_STREAM: Final = "dojang:events"
_SEQ_BITS: Final = 20
_SEQ_MASK: Final = (1 << _SEQ_BITS) - 1


def stream_id_to_seq(stream_id: str) -> int:
    """``"<ms>-<n>"`` → ``ms << 20 | n``."""
    ms, _, n = stream_id.partition("-")
    seq = int(n or 0)
    if seq > _SEQ_MASK:  # over a million entries in one millisecond: refuse, never alias
        raise ValueError("stream id sequence part too large")
    return (int(ms) << _SEQ_BITS) | seq


def seq_to_stream_id(seq: int) -> str:
    """Inverse of ``stream_id_to_seq``."""
    return f"{seq >> _SEQ_BITS}-{seq & _SEQ_MASK}"


def split_stream_url(url: str) -> tuple[str, str]:
    """Split ``redis://…?stream=name`` into (URL for redis-py, stream name)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    stream = next((v for k, v in query if k == "stream"), "") or DEFAULT_STREAM
    rest = urlencode([(k, v) for k, v in query if k != "stream"])
    return urlunsplit(parts._replace(query=rest)), stream


# Pauses between publish attempts (the last entry is never slept: it is the final attempt).
_PUBLISH_BACKOFF = (0.05, 0.2, 0.5, 0.0)


def _unavailable(exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"event stream did not answer: {type(exc).__name__}")


class RedisEventBus:
    """``EventBus`` on a Redis Stream."""

    poll_interval = 1.0

    def __init__(
        self,
        url: str,
        signer: EventSigner,
        *,
        clock: Clock,
        retention: float,
        redis: Redis | None = None,
    ) -> None:
        client_url, self.stream = split_stream_url(url)
        self._redis: Redis = redis or Redis.from_url(client_url, decode_responses=True)
        self._client_url = client_url
        self.signer = signer
        self._clock = clock
        self.retention = retention
        self._notifier = Notifier()
        self._tailer: asyncio.Task[None] | None = None

    @property
    def generation(self) -> int:
        """See ``EventBus.generation``."""
        return self._notifier.generation

    def _min_id(self, now: float) -> str:
        return f"{max(0, int((now - self.retention) * 1000))}-0"

    async def append(self, events: list[Event]) -> list[Event]:
        """Sign and ``XADD`` atomically, trimming what no token can need any more."""
        if not events:
            return []
        signed = self.signer.sign(events)
        min_id = self._min_id(self._clock.now())
        ids: list[Any] = []
        # A revocation must not be lost to one stale pooled connection (e.g. the first call
        # after a Redis restart): retry a few times with a short backoff. A retry after an
        # XADD that did land only duplicates an event, and applying a revocation is idempotent.
        for attempt, pause in enumerate(_PUBLISH_BACKOFF):
            try:
                async with self._redis.pipeline(transaction=True) as pipe:
                    for ev in signed:
                        pipe.xadd(
                            self.stream,
                            {"set": ev.set_jws, "kind": ev.kind, "exp": repr(ev.exp)},
                            minid=min_id,
                            approximate=True,
                        )
                    ids = await pipe.execute()
                break
            except (RedisError, OSError) as exc:
                if attempt == len(_PUBLISH_BACKOFF) - 1:
                    raise _unavailable(exc) from None
                log.warning(
                    "publishing to the event stream failed (%s); retrying", type(exc).__name__
                )
                await asyncio.sleep(pause)
        self._notifier.notify()
        return [
            Event(ev.kind, ev.data, ev.exp, ev.created_at, stream_id_to_seq(str(i)), ev.set_jws)
            for ev, i in zip(signed, ids, strict=True)
        ]

    async def since(self, after_id: int, *, now: float, limit: int = 1000) -> list[Event]:
        """Unexpired entries after ``after_id``, oldest first, at most ``limit``."""
        out: list[Event] = []
        cursor = seq_to_stream_id(after_id)
        try:
            while len(out) < limit:
                batch = await self._redis.xrange(self.stream, f"({cursor}", "+", count=limit)
                if not batch:
                    break
                for entry_id, fields in batch:
                    cursor = str(entry_id)
                    ev = self._decode(cursor, dict(fields or {}))
                    if ev is not None and ev.exp > now:
                        out.append(ev)
                        if len(out) == limit:
                            break
                if len(batch) < limit:
                    break
        except (RedisError, OSError) as exc:
            raise _unavailable(exc) from None
        return out

    def _decode(self, entry_id: str, fields: dict[Any, Any]) -> Event | None:
        """The verified event of one entry, or None (logged) for anything not signed by us.

        The server checks its own stream too: whoever can write to Redis must not be able to
        slip a forged entry into the snapshot or the SSE feed.
        """
        try:
            ev = self.signer.verify(fields["set"])
            return dataclasses.replace(ev, id=stream_id_to_seq(entry_id))
        except (KeyError, ValueError, InvalidToken) as exc:
            security.warning(
                "event stream %s: entry %s ignored (%s)",
                self.stream,
                entry_id[:40],
                type(exc).__name__,
            )
            return None

    async def _info(self) -> dict[str, Any] | None:
        try:
            info: dict[str, Any] = await self._redis.xinfo_stream(self.stream)
        except ResponseError:
            return None  # no such key: nothing published yet (or the store lost it)
        except (RedisError, OSError) as exc:
            raise _unavailable(exc) from None
        return info

    async def last_id(self) -> int:
        """Sequence number of the newest id ever added (0 when the stream does not exist)."""
        info = await self._info()
        return 0 if info is None else stream_id_to_seq(str(info["last-generated-id"]))

    async def purge(self, now: float) -> int:
        """Trim entries older than the retention window."""
        try:
            return int(await self._redis.xtrim(self.stream, minid=self._min_id(now)))
        except (RedisError, OSError) as exc:
            raise _unavailable(exc) from None

    async def needs_reset(self, after_id: int) -> bool:
        """Beyond the newest id (stream lost or replaced) or behind trimmed entries."""
        if after_id <= 0:
            return False
        info = await self._info()
        if info is None:
            return True
        if after_id > stream_id_to_seq(str(info["last-generated-id"])):
            return True
        deleted = str(info.get("max-deleted-entry-id") or "0-0")
        return after_id < stream_id_to_seq(deleted)

    async def wait(self, generation: int, max_wait: float) -> None:
        """See ``EventBus.wait``; starts the shared tailer on first use."""
        if self._tailer is None or self._tailer.done():
            self._tailer = asyncio.get_running_loop().create_task(self._tail())
        await self._notifier.wait(generation, min(max_wait, self.poll_interval))

    async def _tail(self) -> None:
        # A connection of its own: XREAD BLOCK would otherwise hold a pooled one hostage.
        tail: Redis = Redis.from_url(self._client_url, decode_responses=True)
        last = "$"
        try:
            while True:
                try:
                    reply = await tail.xread({self.stream: last}, count=1000, block=5000)
                except (RedisError, OSError) as exc:
                    log.warning("event stream tailer: %s; retrying", type(exc).__name__)
                    await asyncio.sleep(1.0)
                    continue
                for _name, entries in _stream_entries(reply):
                    if entries:
                        last = str(entries[-1][0])
                        self._notifier.notify()
        finally:
            await tail.aclose()

    async def close(self) -> None:
        """Stop the tailer and close the connection pool."""
        if self._tailer is not None:
            self._tailer.cancel()
            with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                await self._tailer
        await self._redis.aclose()


def _stream_entries(reply: Any) -> list[tuple[str, list[tuple[str, dict[str, str]]]]]:
    """XREAD's reply as ``[(stream, entries)]`` under RESP2 (list) and RESP3 (dict)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return [(str(k), v[0] if v and isinstance(v[0], list) else v) for k, v in reply.items()]
    return [(str(name), entries) for name, entries in reply]
