"""Event log backends."""

from dojang.events.backends.sql import SqlEventLog

__all__ = ["SqlEventLog"]
