"""Prometheus metrics of one dojang process, on a registry of its own.

Exposed at ``GET /metrics``, which is not public: it answers only loopback peers, or any peer
that presents ``Authorization: Bearer <DOJANG_METRICS_TOKEN>`` when that token is set.
A loopback peer whose request carries forwarding headers (``Forwarded``, ``X-Forwarded-*``,
``X-Real-IP``, ``Via``) is a proxy on this machine relaying somebody else: it needs the token too.
Counts of security events come from the audit trail (one hook, so the two never disagree);
the forward-auth path records its own results and latency, which are too frequent to audit.
Store-call latency comes from ``dojang.store_timing``; the event-log follower
(``dojang.server.follower``) reports its lag and the revocations' propagation time here.
"""

from __future__ import annotations

import hmac
import ipaddress
from bisect import bisect_left
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from dojang.errors import StoreUnavailable
from dojang.store_timing import BUCKETS as STORE_BUCKETS
from dojang.store_timing import STORE_TIMINGS, StoreTimings

# Buckets sized for a loopback forward-auth call: tens of microseconds to tens of ms.
_CHECK_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.025, 0.1)
_CHECK_STATUSES = (200, 302, 400, 401, 405, 503)


class ForwardAuthStats(Collector):
    """Answers and latency of ``/auth/check``, as plain integers read at scrape time.

    Why not a ``Counter`` and a ``Histogram``: each of their updates takes a lock and the
    histogram walks its buckets in Python, several microseconds per request on the path that
    must stay lean. Every update here happens on the event loop's thread (the handler is
    async and never awaits between reading and writing a field), and so does every scrape
    (``/metrics`` is an async route), so plain integers are exact. The exposition is the same
    as the two prometheus_client metrics it replaces: ``dojang_auth_checks_total{status}`` and
    the ``dojang_auth_check_seconds`` histogram.
    """

    def __init__(self) -> None:
        self.by_status: dict[int, int] = dict.fromkeys(_CHECK_STATUSES, 0)
        self.other = 0
        # One slot per finite bucket plus +Inf; bisect_left gives "le" semantics.
        self.buckets = [0] * (len(_CHECK_BUCKETS) + 1)
        self.seconds = 0.0

    def record(self, status: int, seconds: float) -> None:
        """Count one answer and its handling time."""
        if status in self.by_status:
            self.by_status[status] += 1
        else:
            self.other += 1
        self.buckets[bisect_left(_CHECK_BUCKETS, seconds)] += 1
        self.seconds += seconds

    def collect(self) -> Iterator[Metric]:
        """Yield the counter and histogram families (called by the registry at scrape)."""
        checks = CounterMetricFamily(
            "dojang_auth_checks", "Forward-auth answers by status.", labels=["status"]
        )
        for status, count in self.by_status.items():
            checks.add_metric([str(status)], count)
        checks.add_metric(["other"], self.other)
        yield checks
        yield HistogramMetricFamily(
            "dojang_auth_check_seconds",
            "Forward-auth handling time.",
            buckets=_cumulative(_CHECK_BUCKETS, self.buckets),
            sum_value=self.seconds,
        )


# The ``store`` label for each store name the wrappers are given (their error messages use the
# same names); anything unknown is "other", so a new name can never explode the label set.
_STORE_LABELS: Final = {
    "session store": "sessions",
    "account store": "accounts",
    "audit log": "audit",
    "event log": "events",
    "event stream": "events",
    "replay store": "replay",
    "login throttle": "throttle",
    "database": "database",
}

# From a notification read back within milliseconds to a poll after a long outage.
_PROPAGATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0)

# Headers a proxy adds when it relays a request (RFC 7239, the de-facto X-Forwarded-* family,
# nginx's X-Real-IP, RFC 9110's Via): their presence means the peer is not the client.
FORWARDING_HEADERS: Final = frozenset({"forwarded", "x-real-ip", "via"})
_FORWARDING_PREFIX: Final = "x-forwarded-"


def store_label(name: str) -> str:
    """The ``store`` label of a store name (``"session store"`` → ``"sessions"``)."""
    return _STORE_LABELS.get(name, "other")


def store_of(exc: StoreUnavailable) -> str:
    """The ``store`` label of an outage: every raiser words it ``"<store> did not answer: …"``."""
    return store_label(exc.message.partition(" did not answer")[0])


def _cumulative(bounds: Sequence[float], counts: Sequence[int]) -> list[tuple[str, float]]:
    """Per-bucket counts (the last one +Inf) as Prometheus' cumulative ``(le, count)`` points."""
    points, running = [], 0
    for bound, count in zip((*bounds, float("inf")), counts, strict=True):
        running += count
        points.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
    return points


class StoreTimingStats(Collector):
    """``dojang_store_seconds{store,op}`` from the process's ``dojang.store_timing`` recorder.

    Series are kept per store *name* and mapped to their label (summed where names share one)
    at scrape time, so the recording side stays one dict lookup.
    """

    def __init__(self, timings: StoreTimings = STORE_TIMINGS) -> None:
        self.timings = timings

    def collect(self) -> Iterator[Metric]:
        """Yield the histogram family (called by the registry at scrape)."""
        merged: dict[tuple[str, str], tuple[list[int], float]] = {}
        for (name, op), series in list(self.timings.series.items()):
            key = (store_label(name), op)
            counts, total = merged.get(key, ([0] * len(series.counts), 0.0))
            summed = [a + b for a, b in zip(counts, series.counts, strict=True)]
            merged[key] = (summed, total + series.total)
        family = HistogramMetricFamily(
            "dojang_store_seconds",
            "Duration of store calls (failed ones included) by store and operation.",
            labels=["store", "op"],
        )
        for (store, op), (counts, total) in sorted(merged.items()):
            family.add_metric([store, op], _cumulative(STORE_BUCKETS, counts), total)
        yield family


class EventFollowerStats(Collector):
    """What this process's event-log follower reports, read at scrape time.

    ``dojang_event_subscriber_lag_seconds`` is the time since the follower last confirmed it
    had applied every event in the log: an upper bound on how stale this process's view of
    revocations is (about one poll interval when healthy; it grows while the log cannot be
    read). It is absent until the follower has caught up once (or when none runs, as in the
    CLI). Written only by the follower's task on the event loop, read by the async scrape.
    """

    def __init__(self) -> None:
        self.now: Callable[[], float] | None = None
        self.caught_up_at: float | None = None
        self.applied: dict[str, int] = {}

    def collect(self) -> Iterator[Metric]:
        """Yield the applied-events counter and, once known, the lag gauge."""
        applied = CounterMetricFamily(
            "dojang_events_applied",
            "Events this process's follower read from the event log and applied.",
            labels=["kind"],
        )
        for kind, count in sorted(self.applied.items()):
            applied.add_metric([kind], count)
        yield applied
        if self.now is not None and self.caught_up_at is not None:
            yield GaugeMetricFamily(
                "dojang_event_subscriber_lag_seconds",
                "Seconds since this process last had applied every event in the event log.",
                value=max(0.0, self.now() - self.caught_up_at),
            )


class Metrics:
    """The counters, gauges and histograms dojang exposes."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.logins = Counter(
            "dojang_logins", "Login attempts by outcome.", ["outcome"], registry=r
        )
        self.throttled = Counter(
            "dojang_login_throttled", "Login attempts refused by the throttle.", registry=r
        )
        self.forward_auth = ForwardAuthStats()
        r.register(self.forward_auth)
        self.tokens = Counter(
            "dojang_tokens_minted", "Tokens minted by kind.", ["kind"], registry=r
        )
        self.session_revocations = Counter(
            "dojang_session_revocations",
            "Sessions ended by a person or an operator.",
            ["how"],
            registry=r,
        )
        self.revocations_published = Counter(
            "dojang_revocations_published",
            "Revocation events published by kind.",
            ["kind"],
            registry=r,
        )
        self.store_errors = Counter(
            "dojang_store_errors",
            "Store outages met: requests answered 503 (failed closed) and failed reads of "
            "the event-log follower.",
            ["store"],
            registry=r,
        )
        self.store_seconds = StoreTimingStats()
        r.register(self.store_seconds)
        self.active_sessions = Gauge(
            "dojang_active_sessions", "Live sessions, sampled at the last scrape.", registry=r
        )
        self.events = EventFollowerStats()
        r.register(self.events)
        self.revocation_propagation = Histogram(
            "dojang_revocation_propagation_seconds",
            "From a revocation event's creation to its application by this process's follower.",
            buckets=_PROPAGATION_BUCKETS,
            registry=r,
        )

    def count_store_error(self, exc: StoreUnavailable) -> None:
        """Count one outage under the store its message names."""
        self.store_errors.labels(store=store_of(exc)).inc()

    def on_audit(self, action: str, outcome: str, detail: dict[str, Any]) -> None:
        """Derive counters from an audit record."""
        if action in ("login.success", "login.failure"):
            self.logins.labels(outcome=outcome).inc()
        elif action == "login.throttled":
            self.throttled.inc()
            self.logins.labels(outcome="throttled").inc()
        elif action == "token.minted":
            self.tokens.labels(kind=str(detail.get("kind", "access"))).inc()
        elif action == "token.exchanged":
            self.tokens.labels(kind="exchange").inc()
        elif action in ("logout", "session.revoked", "sessions.revoked_all"):
            self.session_revocations.labels(how=action).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


def is_forwarded(header_names: Collection[str]) -> bool:
    """True if any of the (lower-case) header names is one a relaying proxy adds."""
    return any(
        name in FORWARDING_HEADERS or name.startswith(_FORWARDING_PREFIX) for name in header_names
    )


def may_scrape(
    peer: str | None,
    authorization: str | None,
    token: str | None,
    *,
    forwarded: bool = False,
) -> bool:
    """Loopback peers may scrape; anyone else needs the configured bearer token.

    ``forwarded`` (see :func:`is_forwarded`): the request was relayed by a proxy. A reverse
    proxy on this machine connects from loopback, so without this check every path it
    forwards, ``/metrics`` included, would be open to whoever can reach the proxy.
    """
    if token:
        presented = (authorization or "").removeprefix("Bearer ").encode()
        if authorization and hmac.compare_digest(presented, token.encode()):
            return True
    if peer is None or forwarded:
        return False
    try:
        return ipaddress.ip_address(peer).is_loopback
    except ValueError:
        return False
