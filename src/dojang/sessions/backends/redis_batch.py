"""Coalesce concurrent ``GET``s into one pipelined round trip.

Under load, many requests look up their session in the same event-loop tick. Each lookup
through redis-py costs ~100 µs of Python on its own; sending all lookups that arrive within
one tick as a single pipeline costs a fraction of that per key. Only reads are batched, and a
batch fails as a whole (every waiter gets the same error), so a batch can never answer one
request with another request's data: results are matched to keys by position.
"""

from __future__ import annotations

import asyncio
from typing import Any

from dojang.redis_client import RedisClient


class GetBatcher:
    """Collect ``get(key)`` calls made in one loop iteration and send them together."""

    def __init__(self, client: RedisClient, *, max_batch: int = 256) -> None:
        self._client = client
        self._max = max_batch
        self._pending: list[tuple[str | bytes, asyncio.Future[Any]]] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def get(self, key: str | bytes) -> Any:
        """The value of ``key`` (or None), fetched with whatever else is waiting this tick."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((key, future))
        if len(self._pending) >= self._max:
            self._dispatch()
        elif not self._scheduled:
            # Send at the end of this tick: lookups made by requests woken in the same tick
            # join the batch.
            self._scheduled = True
            loop.call_soon(self._dispatch)
        return await future

    def _dispatch(self) -> None:
        batch, self._pending = self._pending, []
        self._scheduled = False
        if batch:
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._tasks.add(task)  # keep a reference until it is done
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[str | bytes, asyncio.Future[Any]]]) -> None:
        try:
            if len(batch) == 1:
                values = [await self._client.get(batch[0][0])]
            else:
                pipe = self._client.pipeline(transaction=False)
                for key, _ in batch:
                    pipe.get(key)
                values = await pipe.execute()
        except BaseException as exc:  # every waiter sees the failure; nobody gets data
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), value in zip(batch, values, strict=True):
            if not future.done():
                future.set_result(value)
