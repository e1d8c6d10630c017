"""Tables for :mod:`dojang.accounts`: ``users`` and ``login_throttle``."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Boolean, Float, Integer, String, Table
from sqlalchemy.orm import Mapped, mapped_column

from dojang.storage.base import Base


class UserRow(Base):
    """A person who logs in with a username and password."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # Stored normalised (NFKC, case-folded), so the unique constraint is the uniqueness rule.
    username: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)
    password_changed_at: Mapped[float] = mapped_column(Float)


class LoginThrottleRow(Base):
    """Failed-login counters per account and per client network, shared by every worker."""

    __tablename__ = "login_throttle"

    # "u:<sha256 of the normalised username>" or "ip:<address or IPv6 /64>"; usernames are
    # hashed so the table does not list which names were tried.
    key: Mapped[str] = mapped_column(String(96), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    window_start: Mapped[float] = mapped_column(Float)
    last_failure: Mapped[float] = mapped_column(Float)
    blocked_until: Mapped[float] = mapped_column(Float, index=True)


users_table = cast(Table, UserRow.__table__)
"""The Core ``users`` table."""

login_throttle_table = cast(Table, LoginThrottleRow.__table__)
"""The Core ``login_throttle`` table."""
