"""How long this process's store calls take: a histogram per (store, operation), in plain integers.

Recorded by the two wrappers every store call goes through: ``Database.transaction`` (``op``
``write``) and ``Database.connection`` (``read``) in :mod:`dojang.storage.db`, and
:func:`dojang.redis_client.redis_guard` (``redis``). ``store`` is the name those wrappers
already receive for their error messages (``"session store"``, ``"event log"``, ...). The
server exposes the result as ``dojang_store_seconds{store,op}`` (:mod:`dojang.server.metrics`).

Why one recorder per process (:data:`STORE_TIMINGS`) rather than one passed to each store: the
Redis clients are built deep inside the backends a URL selects, the CLI and the server share the
wrappers, and a process has one set of stores; like CPU time, these numbers belong to the
process. Why plain integers rather than a ``prometheus_client.Histogram``: the session lookup of
every forward-auth request passes through ``redis_guard``, and an ``observe`` there (a lock and
a walk over the buckets in Python) would cost more than the rest of this bookkeeping together.
Every update happens on the thread of the event loop that awaits the call, and a scrape only
reads, so the counts are exact in a server; a lost increment under threads would only
under-count.

Not measured: the synchronous SQLite reads of :mod:`dojang.storage.sqlite_read` (the hot session
and key lookups of the embedded default, microseconds each; their fallback to the async path
is measured as a ``read``) and the Redis event stream, which talks to Redis directly.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Final

__all__ = ["BUCKETS", "STORE_TIMINGS", "Series", "StoreTimings"]

BUCKETS: Final = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5)
"""Upper bounds (seconds): loopback Redis answers in tens of microseconds, a queued SQLite
write or a store that times out takes up to seconds."""


class Series:
    """Counts per bucket (the last one is +Inf, not cumulative) and the sum of one series."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0


class StoreTimings:
    """Histograms of store-call durations keyed by (store name, operation)."""

    __slots__ = ("series",)

    def __init__(self) -> None:
        self.series: dict[tuple[str, str], Series] = {}

    def record(self, store: str, op: str, seconds: float) -> None:
        """Count one call of ``seconds`` (failed calls too: a timeout is a slow call)."""
        series = self.series.get((store, op))
        if series is None:
            series = self.series[(store, op)] = Series()
        # bisect_left gives Prometheus' "le" semantics: a value equal to a bound counts in it.
        series.counts[bisect_left(BUCKETS, seconds)] += 1
        series.total += seconds


STORE_TIMINGS: Final = StoreTimings()
"""The recorder of this process (see the module docstring for why there is one)."""
