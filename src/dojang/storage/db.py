"""Engine and session factory for the configured database URL."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from time import perf_counter
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from dojang.errors import ConfigError, StoreUnavailable
from dojang.storage.sqlite_read import SqliteReader, sqlite_path
from dojang.store_timing import STORE_TIMINGS


def normalize_url(url: str) -> str:
    """Map a user-facing database URL to the async driver SQLAlchemy should use.

    ``sqlite:///path`` → ``sqlite+aiosqlite:///path``; ``postgresql://`` / ``postgres://`` →
    ``postgresql+asyncpg://``. Anything else is a configuration error naming the option.
    """
    if url.startswith("sqlite+aiosqlite://") or url.startswith("postgresql+asyncpg://"):
        return url
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ConfigError(
        f"DOJANG_DATABASE_URL: unsupported scheme in {url.split(':', 1)[0]!r}; "
        "use sqlite:///<path> or postgresql://user@host/db"
    )


# The task inside ``Database.transaction`` (of any database): a nested write transaction on
# SQLite would wait forever for the lock its own caller holds. A task, not a flag, because
# tasks started inside a transaction inherit the context but do not hold the lock.
_TRANSACTION_TASK: contextvars.ContextVar[asyncio.Task[Any] | None] = contextvars.ContextVar(
    "dojang_transaction_task", default=None
)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers proceed while one writer commits; busy_timeout turns lock contention
    # between workers into a short wait instead of an immediate "database is locked".
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class Database:
    """Owns the async engine and hands out sessions (units of work)."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        # SQLite admits one writer at a time. Writers of this process queue on an asyncio
        # lock and are handed the database the moment it is free; without it they would
        # collide inside SQLite and back off in its busy handler, which sleeps for up to
        # 100 ms per attempt (a p99 of 700 ms on the token endpoint under load). Writers in
        # other processes (a second worker, the CLI) still meet the busy timeout.
        self._write_lock: AbstractAsyncContextManager[Any] = (
            asyncio.Lock() if self.is_sqlite else nullcontext()
        )
        kwargs: dict[str, Any] = {"echo": echo}
        if not self.is_sqlite:
            kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True, pool_timeout=5)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        # Hot indexed reads of a SQLite file skip the async driver (dojang.storage.sqlite_read).
        path = sqlite_path(self.url)
        self.reader: SqliteReader | None = SqliteReader(path) if path is not None else None
        self.sessionmaker: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False
        )

    def session(self) -> AsyncSession:
        """Return a new ``AsyncSession``; use it as ``async with db.session() as s``."""
        return self.sessionmaker()

    async def create_all(self) -> None:
        """Create every table directly (tests and first run before migrations exist)."""
        import dojang.storage.tables  # noqa: F401  (registers every table)
        from dojang.storage.base import Base

        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)

    @asynccontextmanager
    async def transaction(self, what: str = "database") -> AsyncIterator[AsyncConnection]:
        """One transaction; driver and network failures become ``StoreUnavailable``.

        Fail closed: an unreachable database must never read as "no such row". An
        ``IntegrityError`` passes through: it is an answer (a duplicate), not an outage.
        ``what`` names the store in the message; only the exception's class name is shown.
        The time from asking to commit (the write queue included: callers wait for it too) is
        recorded in ``dojang.store_timing`` as a ``write`` of ``what``.
        """
        task = asyncio.current_task()
        if self.is_sqlite and task is not None and _TRANSACTION_TASK.get() is task:
            raise RuntimeError("nested Database.transaction on SQLite would deadlock")
        token = _TRANSACTION_TASK.set(task)
        started = perf_counter()
        try:
            async with self._write_lock, self.engine.begin() as conn:
                yield conn
        except IntegrityError:
            raise
        except (DBAPIError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"{what} did not answer: {type(exc).__name__}") from exc
        finally:
            STORE_TIMINGS.record(what, "write", perf_counter() - started)
            _TRANSACTION_TASK.reset(token)

    @asynccontextmanager
    async def connection(self, what: str = "database") -> AsyncIterator[AsyncConnection]:
        """A connection for reads, with the same outage mapping as ``transaction``.

        Its duration is recorded in ``dojang.store_timing`` as a ``read`` of ``what``.
        """
        started = perf_counter()
        try:
            async with self.engine.connect() as conn:
                yield conn
        except (DBAPIError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"{what} did not answer: {type(exc).__name__}") from exc
        finally:
            STORE_TIMINGS.record(what, "read", perf_counter() - started)

    async def ping(self) -> None:
        """Run ``SELECT 1``; ``StoreUnavailable`` if the database does not answer."""
        async with self.connection() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        """Close every pooled connection (and the synchronous reader's)."""
        if self.reader is not None:
            self.reader.close()
        await self.engine.dispose()
