"""Group commit: concurrent writes of one kind share a transaction.

Every caller of :meth:`GroupCommit.submit` gets its answer only after its write is committed
(nothing is acknowledged before it is durable), but callers that arrive while a batch is
being written queue up and are written together by the next batch. With one caller at a time
this is exactly one transaction per write; under load it turns N transactions (each a queue
for SQLite's single writer and several round trips through the async driver's thread) into a
few, which is most of the cost of a token request on SQLite.

The batch function sees every queued item and returns one result per item, in order; it runs
inside one ``Database.transaction``. If it raises, every caller of that batch gets the
exception (so the batch function must not raise for one item's ordinary outcome: it returns
that outcome as the item's result instead).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from dojang.storage.db import Database

T = TypeVar("T")
R = TypeVar("R")

BatchWrite = Callable[[AsyncConnection, Sequence[T]], Awaitable[Sequence[R]]]


class GroupCommit(Generic[T, R]):
    """Batches ``submit``-ted items into shared transactions on ``db``."""

    def __init__(
        self, db: Database, what: str, write: BatchWrite[T, R], *, max_batch: int = 500
    ) -> None:
        self._db = db
        self._max_batch = max_batch
        self._what = what
        self._write = write
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Queue ``item``; return its result once the batch holding it has committed."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, done))
        flusher = self._flusher
        if flusher is None or flusher.done() or flusher.get_loop() is not loop:
            self._flusher = loop.create_task(self._flush())
        return await done

    async def _flush(self) -> None:
        """Write queued items, one transaction per batch, until the queue is empty."""
        while self._pending:
            # Bounded: one statement's parameters stay well under every driver's limit.
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                async with self._db.transaction(self._what) as conn:
                    results = await self._write(conn, [item for item, _ in batch])
                    if len(results) != len(batch):  # a bug: roll back rather than guess
                        raise RuntimeError(f"{self._what}: wrong number of batch results")
            except asyncio.CancelledError:
                # Shutting down: nobody may wait forever for a write that will not happen.
                for _, waiter in batch + self._pending:
                    waiter.cancel()
                raise
            except Exception as exc:  # handed to every waiting caller, who raises it
                for _, waiter in batch:
                    if not waiter.done():
                        waiter.set_exception(exc)
                continue
            for (_, waiter), result in zip(batch, results, strict=True):
                if not waiter.done():  # a caller that was cancelled no longer waits
                    waiter.set_result(result)
