"""Opt-in Prometheus metrics for a ``Verifier`` embedded in a business server.

Nothing here runs unless the application asks for it::

    from prometheus_client import CollectorRegistry
    from dojang.verify.metrics import VerifierMetrics, instrument

    registry = CollectorRegistry()
    verifier = Verifier(..., metrics=VerifierMetrics(registry=registry))
    # or, for a verifier built elsewhere:
    instrument(verifier, registry)

Exposed (prefix ``dojang_verifier`` by default):

* ``…_tokens_verified_total`` (counter): tokens that passed every check;
* ``…_tokens_rejected_total{reason}`` (counter): refusals by ``InvalidToken.code``;
* ``…_denylist_entries`` (gauge): live deny entries (sessions, tokens, user cut-offs);
* ``…_revocation_feed_in_sync`` (gauge): 1 while the subscription is trusted, else 0;
* ``…_seconds_since_revocation_event`` (gauge): age of the newest revocation event applied.

The counters sit on the verification hot path, so their label children are bound once here
(``Counter.labels`` takes a lock and builds a key on every call) and the verifier calls a bound
method; without metrics the verifier pays one ``is None`` test. The gauges cost nothing until
scraped: a collector reads the deny list and the subscription at collection time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dojang.clock import SYSTEM_CLOCK, Clock
from dojang.errors import ConfigError, InvalidToken

if TYPE_CHECKING:
    from dojang.verify.verifier import Verifier

__all__ = ["VerifierMetrics", "instrument"]


def _known_codes() -> set[str]:
    """Every ``code`` of the InvalidToken tree imported so far (the verifier's reasons)."""
    codes: set[str] = set()
    pending: list[type[InvalidToken]] = [InvalidToken]
    while pending:
        cls = pending.pop()
        codes.add(cls.code)
        pending.extend(cls.__subclasses__())
    return codes


class VerifierMetrics:
    """The counters of one verifier, plus a scrape-time collector for its revocation state.

    ``registry`` defaults to prometheus_client's global ``REGISTRY``; pass ``None`` to keep the
    metrics unregistered (read them from the attributes). One instance serves one verifier: the
    metric names are registered once per registry, so a second verifier in the same process
    needs its own registry or its own ``prefix``.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = REGISTRY,
        *,
        prefix: str = "dojang_verifier",
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.registry = registry
        self.prefix = prefix
        self._clock = clock
        self.verified = Counter(
            f"{prefix}_tokens_verified",
            "Tokens that passed every check.",
            registry=registry,
        )
        self.rejected = Counter(
            f"{prefix}_tokens_rejected",
            "Tokens refused, by InvalidToken code.",
            ["reason"],
            registry=registry,
        )
        # Bound once: the verifier calls these on every token.
        self.count_verified: Callable[[], None] = self.verified.inc
        self._reasons: dict[str, Callable[[], None]] = {
            code: self.rejected.labels(reason=code).inc for code in sorted(_known_codes())
        }
        self._lock = threading.Lock()
        self.verifier: Verifier | None = None

    def count_rejected(self, code: str) -> None:
        """Count one refusal with reason ``code`` (an ``InvalidToken.code``)."""
        inc = self._reasons.get(code)
        if inc is None:
            # A code from an InvalidToken subclass defined after start-up (a custom
            # RevocationView's): bind it once. Codes are class attributes, so this stays finite.
            with self._lock:
                inc = self._reasons.setdefault(code, self.rejected.labels(reason=code).inc)
        inc()

    def attach(self, verifier: Verifier) -> Verifier:
        """Start counting for ``verifier`` and register its state gauges; return it."""
        if self.verifier is not None:
            raise ConfigError(["metrics: this VerifierMetrics already serves another verifier"])
        self.verifier = verifier
        verifier.metrics = self
        subscription = verifier.subscription
        if subscription is not None:
            # Revocation propagation lag as this verifier sees it: SET iat -> applied.
            self.revocation_lag = Histogram(
                f"{self.prefix}_revocation_lag_seconds",
                "Seconds from a revocation's issue time to this verifier applying it (live).",
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
                registry=self.registry,
            )
            subscription.on_live_event = self.revocation_lag.observe
        if self.registry is not None:
            self.registry.register(_StateCollector(verifier, self.prefix, self._clock))
        return verifier


def instrument(
    verifier: Verifier,
    registry: CollectorRegistry | None = REGISTRY,
    *,
    prefix: str = "dojang_verifier",
    clock: Clock = SYSTEM_CLOCK,
) -> VerifierMetrics:
    """Opt an existing ``verifier`` into metrics on ``registry``; return the metrics object."""
    metrics = VerifierMetrics(registry, prefix=prefix, clock=clock)
    metrics.attach(verifier)
    return metrics


class _StateCollector(Collector):
    """Reads the verifier's deny list and subscription when Prometheus scrapes."""

    def __init__(self, verifier: Verifier, prefix: str, clock: Clock) -> None:
        self._verifier = verifier
        self._prefix = prefix
        self._clock = clock
        self._lock = threading.Lock()
        # The subscription counts applied events but keeps no timestamp, so the collector
        # notes when the count last moved: the age is exact to within one scrape interval.
        self._seen_applied = 0
        self._last_event_at: float | None = None

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        p = self._prefix
        return (
            GaugeMetricFamily(
                f"{p}_denylist_entries",
                "Live deny-list entries (sessions, tokens and user cut-offs).",
            ),
            GaugeMetricFamily(
                f"{p}_revocation_feed_in_sync",
                "1 while the revocation subscription is synchronized and in touch, else 0.",
            ),
            GaugeMetricFamily(
                f"{p}_seconds_since_revocation_event",
                "Seconds since the newest revocation event was applied (scrape resolution).",
            ),
        )

    def describe(self) -> Iterable[Metric]:
        """The metric names, without reading any state (called at registration)."""
        return self._families()

    def collect(self) -> Iterator[Metric]:
        """Sample the deny-list size and the subscription's state now."""
        size, in_sync, age = self._families()
        verifier = self._verifier
        sub = verifier.subscription
        view: Any = sub.deny if sub is not None else verifier.revocations
        if view is not None and hasattr(view, "__len__"):
            size.add_metric([], float(len(view)))
        if sub is not None:
            in_sync.add_metric([], 1.0 if sub.in_sync else 0.0)
            now = self._clock.now()
            with self._lock:
                if sub.applied != self._seen_applied:
                    self._seen_applied = sub.applied
                    self._last_event_at = now
                last = self._last_event_at
            # No sample before the first event: "never" is not a number of seconds.
            if last is not None:
                age.add_metric([], max(0.0, now - last))
        yield size
        yield in_sync
        yield age
