"""Synchronous indexed reads of the SQLite file, for hot paths (forward auth, token endpoint).

Why synchronous, on the event loop: an indexed SQLite lookup in WAL mode costs about ten
microseconds, while handing it to aiosqlite's worker thread and back (plus SQLAlchemy's async
machinery) costs several hundred. WAL readers never wait for writers, so the loop is not
blocked by a write in progress; a short busy timeout bounds the rare exception (WAL recovery),
and any error is raised so the caller falls back to its regular async path, which fails
closed. Every read goes to the file, so a row changed by another process (a second worker,
the CLI) is seen on the very next read: there is no cache to invalidate.

Only for single-row or small indexed SELECTs with constant SQL text; anything that scans
belongs on the async path.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote


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
    """A read-only ``sqlite3`` connection, opened on first use and reopened after an error."""

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
            cached_statements=32,
        )
        conn.execute("PRAGMA query_only=ON")
        return conn

    def fetch_one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """The first row of ``sql`` or None; raises ``sqlite3.Error`` (callers fall back)."""
        conn = self._conn
        if conn is None:
            conn = self._conn = self._connect()
        try:
            row: tuple[Any, ...] | None = conn.execute(sql, params).fetchone()
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
