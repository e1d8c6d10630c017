"""The ``audit_log`` table: append-only record of security-relevant actions."""

from __future__ import annotations

from typing import cast

from sqlalchemy import BigInteger, Float, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from dojang.storage.base import Base


class AuditRow(Base):
    """One audited action. Never holds passwords, cookie values or tokens."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[float] = mapped_column(Float, index=True)
    action: Mapped[str] = mapped_column(String(48), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    subject: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    client_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(256), nullable=True)
    session_ref: Mapped[str | None] = mapped_column(String(32), nullable=True)
    detail: Mapped[str] = mapped_column(Text)  # compact JSON of non-secret facts


audit_table = cast(Table, AuditRow.__table__)
