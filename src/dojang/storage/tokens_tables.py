"""Tables owned by ``dojang.tokens``: the replay list of redeemed one-time tokens."""

from __future__ import annotations

from sqlalchemy import Float, String
from sqlalchemy.orm import Mapped, mapped_column

from dojang.storage.base import Base

__all__ = ["UsedJti"]


class UsedJti(Base):
    """A one-time token id that has been redeemed.

    The primary key makes redemption atomic: the first INSERT wins, every replay hits the
    constraint (no read-then-write race). Rows can be purged once ``exp`` has passed, because
    the verifier rejects the token itself from then on.
    """

    __tablename__ = "used_jtis"

    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    exp: Mapped[float] = mapped_column(Float, nullable=False, index=True)
