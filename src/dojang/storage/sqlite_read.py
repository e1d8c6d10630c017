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

import logging
import sqlite3
from collections import namedtuple
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sqlalchemy import Boolean, Select
from sqlalchemy.dialects import sqlite

if TYPE_CHECKING:
    from dojang.storage.db import Database

log = logging.getLogger("dojang.storage")


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


class IndexedSelect:
    """One indexed ``SELECT`` that runs on the synchronous reader when the database is a
    SQLite file, and through SQLAlchemy otherwise, with the same columns either way.

    The SQLite text is compiled from the very statement the async path runs (``qmark``
    parameters in the compiled order), so the two paths cannot drift apart. Rows come back
    as one named tuple type with Boolean columns as ``bool`` on both paths.
    """

    def __init__(self, stmt: Select[Any]) -> None:
        self.stmt = stmt
        compiled = stmt.compile(dialect=sqlite.dialect(paramstyle="qmark"))
        self.sqlite_sql = str(compiled)
        self._order: tuple[str, ...] = tuple(compiled.positiontup or ())
        columns = list(stmt.selected_columns)
        self._row = namedtuple("Row", [c.key for c in columns])  # type: ignore[misc]
        self._bools = tuple(i for i, c in enumerate(columns) if isinstance(c.type, Boolean))

    def _shape(self, values: Sequence[Any]) -> Any:
        if self._bools:
            values = list(values)
            for i in self._bools:
                values[i] = None if values[i] is None else bool(values[i])
        return self._row(*values)

    def raw_now(self, db: Database, *params: Any) -> tuple[Any, ...] | None:
        """The first row as a plain tuple (no named tuple, no bool conversion), or None,
        from the synchronous reader only; params in the compiled order.

        Raises ``sqlite3.Error`` when the reader fails and ``LookupError`` when the database
        has no synchronous reader (not a SQLite file): callers then use :meth:`one`.
        """
        reader = db.reader
        if reader is None:
            raise LookupError("no synchronous reader for this database")
        return reader.fetch_one(self.sqlite_sql, params)

    async def one(self, db: Database, what: str, **params: Any) -> Any | None:
        """The first row for ``params`` (a named tuple) or None; outages → StoreUnavailable."""
        try:
            row = self.raw_now(db, *(params[k] for k in self._order))
        except LookupError:
            pass  # not a SQLite file: the async path is the only one
        except sqlite3.Error as e:
            log.warning("fast %s read failed (%s); using the async path", what, type(e).__name__)
        else:
            return None if row is None else self._shape(row)
        async with db.connection(what) as conn:
            found = (await conn.execute(self.stmt, params)).first()
        return None if found is None else self._shape(tuple(found))
