"""The ``sessions`` table behind :class:`dojang.sessions.backends.sql.SqlSessionStore`."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Float, LargeBinary, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from dojang.storage.base import Base


class SessionRow(Base):
    """One server-side session; keyed by SHA-256 of the cookie value, never the value itself."""

    __tablename__ = "sessions"

    key_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    sid: Mapped[str] = mapped_column(String(32), unique=True, index=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float)
    auth_time: Mapped[float] = mapped_column(Float)
    idle_timeout: Mapped[float] = mapped_column(Float)
    absolute_expires_at: Mapped[float] = mapped_column(Float)
    # min(last_seen + idle_timeout, absolute_expires_at), kept in step on every write so that
    # purging expired sessions is one indexed range delete instead of a full scan.
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    csrf_secret: Mapped[str] = mapped_column(String(64))
    methods: Mapped[str] = mapped_column(Text)  # JSON list of method names
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    data: Mapped[str] = mapped_column(Text)  # JSON object, size-limited by the manager


sessions_table = cast(Table, SessionRow.__table__)
"""The Core table, for statements that need no ORM identity map."""
