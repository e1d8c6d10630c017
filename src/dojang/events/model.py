"""The event record and its kinds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

EVENT_KINDS: Final = frozenset(
    {"session.revoked", "user.sessions_revoked", "token.revoked", "key.retired"}
)
"""Every event kind dojang publishes; anything else is refused."""

_REQUIRED: Final[dict[str, frozenset[str]]] = {
    "session.revoked": frozenset({"sid"}),
    "user.sessions_revoked": frozenset({"sub", "before"}),
    "token.revoked": frozenset({"jti"}),
    "key.retired": frozenset({"kid"}),
}


@dataclass(frozen=True, slots=True)
class Event:
    """One event. ``id`` is its position in the log (0 before it is appended)."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)
    exp: float = 0.0
    created_at: float = 0.0
    id: int = 0
    set_jws: str = field(default="", compare=False, repr=False)
    """The Security Event Token (RFC 8417) that carries this event, once signed."""

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {self.kind!r}")
        missing = _REQUIRED[self.kind] - self.data.keys()
        if missing:
            raise ValueError(f"{self.kind} event needs {', '.join(sorted(missing))}")

    def as_dict(self) -> dict[str, Any]:
        """The wire form used by the snapshot endpoint (with the signed ``set`` when known)."""
        out = {"id": self.id, "kind": self.kind, "exp": self.exp, **self.data}
        if self.set_jws:
            out["set"] = self.set_jws
        return out
