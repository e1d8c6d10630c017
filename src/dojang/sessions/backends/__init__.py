"""Session store backends, chosen by the ``DOJANG_SESSION_STORE`` setting.

Each backend is one module implementing :class:`dojang.sessions.store.SessionStore`;
:func:`open_session_store` maps the setting to one of them.
"""

from __future__ import annotations

from dojang.errors import ConfigError
from dojang.sessions.backends.memory import MemorySessionStore
from dojang.sessions.backends.sql import SqlSessionStore
from dojang.sessions.store import SessionStore
from dojang.storage.db import Database

_REDIS_SCHEMES = ("redis://", "rediss://", "redis+cluster://", "redis+sentinel://")


def open_session_store(url_or_setting: str, db: Database) -> SessionStore:
    """Return the session store named by ``DOJANG_SESSION_STORE``.

    ``"sql"`` keeps sessions in the main database ``db``; ``"memory"`` keeps them in this
    process (one worker only); a ``redis://``, ``rediss://``, ``redis+cluster://`` or
    ``redis+sentinel://`` URL opens a :class:`~dojang.sessions.backends.redis.RedisSessionStore`
    with its own client (closed by the store's ``close()``). Anything else is a ``ConfigError``
    naming the option.
    """
    setting = url_or_setting.strip()
    if setting == "sql":
        return SqlSessionStore(db)
    if setting == "memory":
        return MemorySessionStore()
    if setting.startswith(_REDIS_SCHEMES):
        # Imported here so deployments without Redis never import redis-py.
        from dojang.sessions.backends.redis import RedisSessionStore

        return RedisSessionStore.from_url(setting)
    # Show only the scheme: a URL may carry a password.
    shown = setting.split("://", 1)[0] + "://…" if "://" in setting else setting
    raise ConfigError(
        f"DOJANG_SESSION_STORE: expected 'sql', 'memory' or a redis:// URL, got {shown!r}"
    )


__all__ = ["MemorySessionStore", "SqlSessionStore", "open_session_store"]
