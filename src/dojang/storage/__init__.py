"""Relational storage: SQLAlchemy 2 (async) models and Alembic migrations.

SQLite (WAL) is the embedded default; the same models run on PostgreSQL through asyncpg.
Each area keeps its tables in its own module under ``dojang.storage`` (``sessions_tables``,
``accounts_tables``, ``tokens_tables``), all on the one ``Base`` declared in ``base``.
"""

from dojang.storage.base import Base
from dojang.storage.db import Database, normalize_url

__all__ = ["Base", "Database", "normalize_url"]
