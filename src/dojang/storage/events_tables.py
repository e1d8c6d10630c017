"""The ``events`` table: the durable, ordered log of revocation and invalidation events."""

from __future__ import annotations

from typing import cast

from sqlalchemy import BigInteger, Float, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from dojang.storage.base import Base


class EventRow(Base):
    """One event; ``id`` is the monotonic sequence number subscribers resume from."""

    __tablename__ = "events"

    # BigInteger on PostgreSQL, INTEGER PRIMARY KEY (the rowid) on SQLite: both autoincrement.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[str] = mapped_column(Text)  # compact JSON: only opaque ids, no personal data
    # The Security Event Token (RFC 8417) carrying this event: what subscribers verify.
    signed: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float)
    exp: Mapped[float] = mapped_column(Float, index=True)


events_table = cast(Table, EventRow.__table__)
