"""Prometheus metrics of one dojang process, on a registry of its own.

Exposed at ``GET /metrics``, which is not public: it answers only loopback peers, or any peer
that presents ``Authorization: Bearer <DOJANG_METRICS_TOKEN>`` when that token is set.
Counts of security events come from the audit trail (one hook, so the two never disagree);
the forward-auth path records its own results and latency, which are too frequent to audit.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Buckets sized for a loopback forward-auth call: tens of microseconds to tens of ms.
_CHECK_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.025, 0.1)


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
        self.auth_checks = Counter(
            "dojang_auth_checks", "Forward-auth answers by status.", ["status"], registry=r
        )
        self.auth_check_seconds = Histogram(
            "dojang_auth_check_seconds",
            "Forward-auth handling time.",
            buckets=_CHECK_BUCKETS,
            registry=r,
        )
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
            "Store calls that failed (the request failed closed).",
            ["store"],
            registry=r,
        )
        self.active_sessions = Gauge(
            "dojang_active_sessions", "Live sessions, sampled at the last scrape.", registry=r
        )

        # Label children bound once: .labels() takes a lock and a dict lookup on every call.
        self._check_children = {
            status: self.auth_checks.labels(status=str(status))
            for status in (200, 302, 400, 401, 405, 503)
        }
        self._check_other = self.auth_checks.labels(status="other")

    def auth_check_counter(self, status: int) -> Any:
        """The counter child for one forward-auth status code."""
        return self._check_children.get(status, self._check_other)

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


def may_scrape(peer: str | None, authorization: str | None, token: str | None) -> bool:
    """Loopback peers may scrape; anyone else needs the configured bearer token."""
    if token:
        presented = (authorization or "").removeprefix("Bearer ").encode()
        if authorization and hmac.compare_digest(presented, token.encode()):
            return True
    if peer is None:
        return False
    try:
        return ipaddress.ip_address(peer).is_loopback
    except ValueError:
        return False
