"""Opt-in verifier metrics: the counters move with every outcome, the gauges read live state."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from dojang.clock import FrozenClock
from dojang.errors import ConfigError, InvalidToken, RevokedToken
from dojang.jose import KeySet
from dojang.tokens import Issuer
from dojang.verify import DenyList, Verifier
from dojang.verify.metrics import VerifierMetrics, instrument
from tests.events.live import LiveServer, login_and_token, logout, wait_until
from tests.verify.conftest import AUD, ISS

P = "dojang_verifier"


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def _verifier(keyset: KeySet, clock: FrozenClock, **kw: Any) -> Verifier:
    return Verifier(issuer=ISS, audience=AUD, jwks=keyset.public_jwks(), clock=clock, **kw)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def test_without_metrics_nothing_is_attached(
    issuer: Issuer, keyset: KeySet, clock: FrozenClock
) -> None:
    v = _verifier(keyset, clock)
    assert v.metrics is None
    assert v.verify(issuer.access_token(sub="u1", audience=AUD, sid="s1"))["sub"] == "u1"


async def test_verified_counts_sync_and_async(
    issuer: Issuer, keyset: KeySet, clock: FrozenClock, registry: CollectorRegistry
) -> None:
    v = _verifier(keyset, clock, metrics=VerifierMetrics(registry))
    token = issuer.access_token(sub="u1", audience=AUD, sid="s1")
    assert _value(registry, f"{P}_tokens_verified_total") == 0
    v.verify(token)
    await v.averify(token)
    assert _value(registry, f"{P}_tokens_verified_total") == 2


def test_reasons_are_prebound_at_zero(keyset: KeySet, registry: CollectorRegistry) -> None:
    """Every known refusal reason is exported before the first refusal (rate() needs a 0)."""
    VerifierMetrics(registry)
    for reason in ("expired_token", "bad_signature", "revoked_token", "revocations_unavailable"):
        assert _value(registry, f"{P}_tokens_rejected_total", reason=reason) == 0


async def test_rejections_count_by_reason(
    issuer: Issuer, keyset: KeySet, clock: FrozenClock, registry: CollectorRegistry
) -> None:
    deny = DenyList(clock=clock)
    v = _verifier(keyset, clock, revocations=deny, metrics=VerifierMetrics(registry))
    good = issuer.access_token(sub="u1", audience=AUD, sid="s1", ttl=60)
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    cases: list[tuple[str, str]] = [
        ("not a token", "malformed_token"),
        (forged, "bad_signature"),
    ]
    for token, _ in cases:
        with pytest.raises(InvalidToken):
            v.verify(token)
    deny.add_sid("s1", clock.now() + 60)
    with pytest.raises(RevokedToken):
        await v.averify(good)
    clock.advance(3600)
    with pytest.raises(InvalidToken):
        v.verify(good)  # expired now (checked before revocation)
    rejected = f"{P}_tokens_rejected_total"
    assert _value(registry, rejected, reason="malformed_token") == 1
    assert _value(registry, rejected, reason="bad_signature") == 1
    assert _value(registry, rejected, reason="revoked_token") == 1
    assert _value(registry, rejected, reason="expired_token") == 1
    assert _value(registry, f"{P}_tokens_verified_total") == 0


class _Broken:
    """A revocation view with a bug: the verifier must deny, and count it as invalid_token."""

    def is_revoked(self, claims: Mapping[str, Any]) -> bool:
        raise RuntimeError("bug")


def test_unexpected_errors_count_as_invalid_token(
    issuer: Issuer, keyset: KeySet, clock: FrozenClock, registry: CollectorRegistry
) -> None:
    v = _verifier(keyset, clock, revocations=_Broken(), metrics=VerifierMetrics(registry))
    with pytest.raises(InvalidToken):
        v.verify(issuer.access_token(sub="u1", audience=AUD, sid="s1"))
    assert _value(registry, f"{P}_tokens_rejected_total", reason="invalid_token") == 1


class _Custom(InvalidToken):
    code = "custom_refusal"


class _Refusing:
    def is_revoked(self, claims: Mapping[str, Any]) -> bool:
        raise _Custom("nope")


def test_a_code_unknown_at_start_up_is_bound_on_first_use(
    issuer: Issuer, keyset: KeySet, clock: FrozenClock, registry: CollectorRegistry
) -> None:
    metrics = VerifierMetrics(registry)
    v = _verifier(keyset, clock, revocations=_Refusing())
    instrument_target = metrics.attach(v)
    assert instrument_target is v and v.metrics is metrics
    for _ in range(2):
        with pytest.raises(_Custom):
            v.verify(issuer.access_token(sub="u1", audience=AUD, sid="s1"))
    assert _value(registry, f"{P}_tokens_rejected_total", reason="custom_refusal") == 2


def test_denylist_gauge_follows_the_list(
    keyset: KeySet, clock: FrozenClock, registry: CollectorRegistry
) -> None:
    deny = DenyList(clock=clock)
    v = _verifier(keyset, clock, revocations=deny)
    instrument(v, registry)
    assert _value(registry, f"{P}_denylist_entries") == 0
    deny.add_sid("s1", clock.now() + 30)
    deny.add_jti("j1", clock.now() + 30)
    assert _value(registry, f"{P}_denylist_entries") == 2
    # No subscription: no feed gauges at all (not a misleading 0).
    assert _value(registry, f"{P}_revocation_feed_in_sync") is None
    assert _value(registry, f"{P}_seconds_since_revocation_event") is None


def test_one_metrics_object_serves_one_verifier(keyset: KeySet, clock: FrozenClock) -> None:
    metrics = VerifierMetrics(None)
    _verifier(keyset, clock, metrics=metrics)
    with pytest.raises(ConfigError):
        _verifier(keyset, clock, metrics=metrics)


def test_prefix_allows_two_verifiers_in_one_registry(
    keyset: KeySet, clock: FrozenClock, registry: CollectorRegistry
) -> None:
    _verifier(keyset, clock, metrics=VerifierMetrics(registry))
    _verifier(keyset, clock, metrics=VerifierMetrics(registry, prefix="billing_verifier"))
    assert _value(registry, "billing_verifier_tokens_verified_total") == 0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    srv = LiveServer(tmp_path / "data").start()
    srv.setup_users("alice")
    try:
        yield srv
    finally:
        srv.stop()


def test_subscription_gauges_follow_the_feed(
    server: LiveServer, registry: CollectorRegistry
) -> None:
    """A logout reaches the deny list; the gauges show it and the event's age (metrics clock)."""
    metrics_clock = FrozenClock()
    with (
        httpx.Client(base_url=server.base_url) as client,
        Verifier(
            issuer=server.settings.issuer,
            audience="orders-api",
            jwks=f"{server.base_url}/.well-known/jwks.json",
            revocations=f"{server.base_url}/events/revocations",
            metrics=VerifierMetrics(registry, clock=metrics_clock),
        ) as verifier,
    ):
        csrf, token = login_and_token(client, "alice")
        assert verifier.verify(token)["sub"]
        assert _value(registry, f"{P}_revocation_feed_in_sync") == 1
        assert _value(registry, f"{P}_denylist_entries") == 0
        assert _value(registry, f"{P}_seconds_since_revocation_event") is None  # none yet
        logout(client, csrf)
        wait_until(
            lambda: _value(registry, f"{P}_denylist_entries") == 1, what="revocation applied"
        )
        assert _value(registry, f"{P}_seconds_since_revocation_event") == 0
        # The live event's propagation lag (SET iat -> applied here), real clocks on loopback.
        assert _value(registry, f"{P}_revocation_lag_seconds_count") == 1
        lag = _value(registry, f"{P}_revocation_lag_seconds_sum")
        assert lag is not None and 0 <= lag < 1.0
        metrics_clock.advance(12.5)
        assert _value(registry, f"{P}_seconds_since_revocation_event") == 12.5
        with pytest.raises(RevokedToken):
            verifier.verify(token)
        assert _value(registry, f"{P}_tokens_rejected_total", reason="revoked_token") == 1
        assert _value(registry, f"{P}_tokens_verified_total") == 1
    assert _value(registry, f"{P}_revocation_feed_in_sync") == 0  # closed: untrusted
