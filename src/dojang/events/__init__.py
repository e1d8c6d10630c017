"""Revocation and invalidation events (DESIGN.md "Revocation events").

Kinds: ``session.revoked {sid}``, ``user.sessions_revoked {sub, before}``,
``token.revoked {jti}``, ``key.retired {kid}``. Each carries ``exp``, after which it can be
forgotten: the longest lifetime of any token it can affect. The embedded default keeps them
in the database (``SqlEventLog``); the Redis Streams bus and the signed SSE feed build on the
same ``Event`` records.
"""

from dojang.events.log import EventLog
from dojang.events.model import EVENT_KINDS, Event

__all__ = ["EVENT_KINDS", "Event", "EventLog"]
