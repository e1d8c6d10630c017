"""Synchronous primary-key reads of the ``sessions`` table, for the forward-auth hot path.

Why synchronous, on the event loop: a SQLite primary-key lookup in WAL mode costs about ten
microseconds, while handing it to aiosqlite's worker thread and back (plus SQLAlchemy's
async machinery) costs several hundred. WAL readers never wait for writers, so the loop is
not blocked by a write in progress; a short busy timeout bounds the rare exception (WAL
recovery), and any error falls back to the regular async path, which fails closed.
Every read goes to the file, so a session ended by another process (a second worker, the
CLI) is refused on the very next request: there is no cache to invalidate.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

log = logging.getLogger("dojang.sessions")

COLUMNS = (
    "key_hash",
    "sid",
    "user_id",
    "created_at",
    "last_seen",
    "auth_time",
    "idle_timeout",
    "absolute_expires_at",
    "csrf_secret",
    "methods",
    "ip",
    "user_agent",
    "data",
)
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM sessions WHERE key_hash = ?"  # noqa: S608 - constant


def sqlite_path(url: str) -> Path | None:
    """The file path of a ``sqlite+aiosqlite:///path`` URL, or None for in-memory databases."""
    prefix = "sqlite+aiosqlite:///"
    if not url.startswith(prefix):
        return None
    path = url[len(prefix) :].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


class SqliteReader:
    """A read-only ``sqlite3`` connection used only for ``SELECT ... WHERE key_hash = ?``."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            f"file:{quote(str(self._path))}?mode=ro",
            uri=True,
            timeout=0.05,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=16,
        )
        conn.execute("PRAGMA query_only=ON")
        return conn

    def get(self, key_hash: bytes) -> tuple[Any, ...] | None:
        """The row for ``key_hash`` (columns in ``COLUMNS`` order) or None.

        Raises ``sqlite3.Error`` when the file cannot be read; callers fall back.
        """
        conn = self._conn
        if conn is None:
            conn = self._conn = self._connect()
        try:
            row: tuple[Any, ...] | None = conn.execute(_SELECT, (key_hash,)).fetchone()
        except sqlite3.Error:
            # Reconnect next time (the file may have been replaced); the caller falls back.
            self.close()
            raise
        return row

    def close(self) -> None:
        """Close the connection (reopened on the next read)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
