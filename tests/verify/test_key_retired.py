"""Retired keys at the verifier: ``key.retired`` deny entries and keep-until expiry.

Each test stops a token signed by a key that should no longer be trusted (a compromised key
retired at once, or a retired key past its keep-until time).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from dojang.clock import FrozenClock
from dojang.errors import RevokedToken, UnknownKey
from dojang.events import Event
from dojang.events.secevent import sign_event
from dojang.jose import KeySet
from dojang.tokens import Issuer
from dojang.verify import DenyList, Verifier
from dojang.verify.jwks import StaticKeys
from dojang.verify.subscription import SseSubscription
from tests.verify.conftest import AUD, ISS


def _two_keys(clock: FrozenClock) -> tuple[KeySet, str, str]:
    """A key set after one rotation, a token of the retired key and one of the active key."""
    keyset = KeySet.generate(now=clock.now())
    old = Issuer(keyset, issuer=ISS, clock=clock).service_token(
        client_id="batch", audience=AUD, scope=""
    )
    keyset.add_next(now=clock.now())
    keyset.rotate(now=clock.now(), keep_for=600)
    new = Issuer(keyset, issuer=ISS, clock=clock).service_token(
        client_id="batch", audience=AUD, scope=""
    )
    return keyset, old, new


def test_denylist_kid_entries_expire(clock: FrozenClock) -> None:
    deny = DenyList(clock=clock)
    deny.add_kid("k1", clock.now() + 10)
    assert deny.is_key_retired("k1") and not deny.is_key_retired("k2")
    assert len(deny) == 1
    assert not deny.is_revoked({"kid": "k1"})  # a claim named kid is not the header's kid
    clock.advance(11)
    assert deny.purge() == 1
    assert not deny.is_key_retired("k1") and len(deny) == 0


def test_verifier_refuses_tokens_of_a_kid_retired_at_once(clock: FrozenClock) -> None:
    """A compromised key: the verifier's cached JWKS still lists it, the deny entry wins."""
    keyset, old, new = _two_keys(clock)
    deny = DenyList(clock=clock)
    verifier = Verifier(
        issuer=ISS, audience=AUD, jwks=keyset.public_jwks(), clock=clock, revocations=deny
    )
    assert verifier.verify(old)["sub"] == "batch"
    retired_kid = keyset.keys()[0].kid
    deny.add_kid(retired_kid, clock.now() + 960)
    with pytest.raises(RevokedToken, match="retired key"):
        verifier.verify(old)
    assert verifier.verify(new)["sub"] == "batch"  # only that key


async def test_async_path_refuses_it_too(clock: FrozenClock) -> None:
    keyset, old, _ = _two_keys(clock)
    deny = DenyList(clock=clock)
    deny.add_kid(keyset.keys()[0].kid, clock.now() + 960)
    verifier = Verifier(
        issuer=ISS, audience=AUD, jwks=keyset.public_jwks(), clock=clock, revocations=deny
    )
    with pytest.raises(RevokedToken):
        await verifier.averify(old)


def test_a_view_without_is_key_retired_still_works(clock: FrozenClock) -> None:
    class OnlySessions:
        def is_revoked(self, claims: Mapping[str, Any]) -> bool:
            return claims.get("sid") == "dead"

    keyset, old, _ = _two_keys(clock)
    verifier = Verifier(
        issuer=ISS, audience=AUD, jwks=keyset.public_jwks(), clock=clock, revocations=OnlySessions()
    )
    assert verifier.verify(old)["sub"] == "batch"


async def test_subscription_applies_key_retired_events(clock: FrozenClock) -> None:
    """A genuine key.retired SET reaches the deny list the verifier consults; a forged one
    (signed by a key the subscriber does not trust) changes nothing."""
    keyset, _, _ = _two_keys(clock)
    retired_kid = keyset.keys()[0].kid
    subscription = SseSubscription(
        "http://127.0.0.1:9/events/revocations",
        keys=StaticKeys(KeySet.from_jwks(keyset.public_jwks())),
        issuer=ISS,
        algorithms=("EdDSA",),
        clock=clock,
    )
    event = Event("key.retired", {"kid": retired_kid}, clock.now() + 960, clock.now())
    assert not subscription.is_key_retired(retired_kid)
    applied = await subscription._apply_set(sign_event(event, keyset.active, issuer=ISS), "test")
    assert applied is not None and applied.kind == "key.retired"
    assert subscription.is_key_retired(retired_kid)
    assert not subscription.is_key_retired(keyset.active.kid)
    forged = Event("key.retired", {"kid": keyset.active.kid}, clock.now() + 960, clock.now())
    outsider = KeySet.generate().active
    assert await subscription._apply_set(sign_event(forged, outsider, issuer=ISS), "x") is None
    assert not subscription.is_key_retired(keyset.active.kid)


def test_verifier_judges_keep_until_by_its_own_clock(clock: FrozenClock) -> None:
    """A KeySet given without a clock: the verifier's clock decides when a retired key dies,
    before anyone purges it."""
    keyset = KeySet.generate(now=clock.now())
    old = Issuer(keyset, issuer=ISS, clock=clock).service_token(
        client_id="batch", audience=AUD, scope="", ttl=120
    )
    keyset.add_next(now=clock.now())
    # Kept for less than the token lives, so the token is still unexpired when the key dies.
    keyset.rotate(now=clock.now(), keep_for=30)
    verifier = Verifier(issuer=ISS, audience=AUD, jwks=keyset, clock=clock)
    clock.advance(29)
    assert verifier.verify(old)["sub"] == "batch"
    clock.advance(1)
    with pytest.raises(UnknownKey):
        verifier.verify(old)
    assert len(keyset) == 2  # not purged: dead at use time all the same
