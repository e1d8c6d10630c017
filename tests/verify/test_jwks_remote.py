"""Remote JWKS: fetch, cooldown, single flight, staleness, and hostile endpoints (real server)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dojang.clock import FrozenClock
from dojang.errors import KeysUnavailable, UnknownKey
from dojang.jose import Key, KeySet
from dojang.tokens import Issuer
from dojang.verify import Verifier
from tests.security.jwt_forge import claims, forge, header
from tests.verify.conftest import AUD, ISS, JwksServer


def _remote(server: JwksServer, clock: FrozenClock, **kw: Any) -> Verifier:
    return Verifier(issuer=ISS, audience=AUD, jwks=server.url, clock=clock, **kw)


def _token(issuer: Issuer) -> str:
    return issuer.access_token(sub="u1", audience=AUD, sid="s1")


async def test_fetch_once_then_cached(
    jwks_server: JwksServer, keyset: KeySet, issuer: Issuer, clock: FrozenClock
) -> None:
    jwks_server.document = keyset.public_jwks()
    v = _remote(jwks_server, clock)
    assert v.verify(_token(issuer))["sub"] == "u1"
    assert (await v.averify(_token(issuer)))["sub"] == "u1"
    assert jwks_server.hits == 1


async def test_unknown_kid_spray_causes_one_fetch_per_cooldown(
    jwks_server: JwksServer, keyset: KeySet, issuer: Issuer, clock: FrozenClock
) -> None:
    """Refetch storm: random kids trigger at most one fetch per cooldown window."""
    jwks_server.document = keyset.public_jwks()
    v = _remote(jwks_server, clock, jwks_cooldown=30)
    v.verify(_token(issuer))
    attacker = Key.generate("EdDSA")
    for round_ in range(2):
        for n in range(20):
            bad = forge(header(attacker, kid=f"k{n}"), claims(), attacker)
            with pytest.raises(UnknownKey):
                v.verify(bad)
            with pytest.raises(UnknownKey):
                await v.averify(bad)
        # Round 0 falls in the cooldown of the initial fetch: no refetch at all. Round 1
        # starts after the window: exactly one refetch for the whole spray.
        assert jwks_server.hits == 1 + round_
        clock.advance(31)


async def test_rotation_picked_up_after_cooldown(
    jwks_server: JwksServer, keyset: KeySet, issuer: Issuer, clock: FrozenClock
) -> None:
    jwks_server.document = keyset.public_jwks()
    v = _remote(jwks_server, clock, jwks_cooldown=30)
    v.verify(_token(issuer))
    keyset.rotate(now=clock.now())
    jwks_server.document = keyset.public_jwks()
    fresh = _token(issuer)
    with pytest.raises(UnknownKey):  # within the cooldown of the initial fetch
        v.verify(fresh)
    clock.advance(31)
    assert (await v.averify(fresh))["sub"] == "u1"
    assert jwks_server.hits == 2


async def test_concurrent_callers_share_one_fetch(
    jwks_server: JwksServer, keyset: KeySet, issuer: Issuer, clock: FrozenClock
) -> None:
    jwks_server.document = keyset.public_jwks()
    jwks_server.gate.clear()  # hold the response until every caller is waiting
    v = _remote(jwks_server, clock)
    token = _token(issuer)
    tasks = [asyncio.create_task(v.averify(token)) for _ in range(25)]
    assert await asyncio.to_thread(jwks_server.arrived.wait, 5)
    await asyncio.sleep(0)  # let every task reach its wait on the shared fetch
    jwks_server.gate.set()
    results = await asyncio.gather(*tasks)
    assert all(r["sub"] == "u1" for r in results)
    assert jwks_server.hits == 1


async def test_last_good_keys_until_max_stale(
    jwks_server: JwksServer, keyset: KeySet, issuer: Issuer, clock: FrozenClock
) -> None:
    """An endpoint outage keeps old keys working for max_stale, then fails closed."""
    jwks_server.document = keyset.public_jwks()
    v = _remote(jwks_server, clock, jwks_cooldown=30, jwks_max_stale=3600)
    v.verify(_token(issuer))
    jwks_server.status = 500
    clock.advance(1800)
    assert v.verify(_token(issuer))["sub"] == "u1"  # refresh failed, old keys still trusted
    assert (await v.averify(_token(issuer)))["sub"] == "u1"
    clock.advance(1801)
    with pytest.raises(KeysUnavailable):
        v.verify(_token(issuer))
    with pytest.raises(KeysUnavailable):
        await v.averify(_token(issuer))


@pytest.mark.parametrize(
    "hostile",
    ["redirect", "status_404", "too_big", "not_json", "not_object", "no_usable_key", "private"],
)
async def test_hostile_endpoints_yield_no_keys(
    jwks_server: JwksServer, keyset: KeySet, issuer: Issuer, clock: FrozenClock, hostile: str
) -> None:
    """Redirects are not followed; oversized, malformed or key-less documents are refused."""
    good = keyset.public_jwks()
    if hostile == "redirect":
        jwks_server.status, jwks_server.location = 302, jwks_server.url + "?moved"
    elif hostile == "status_404":
        jwks_server.status = 404
    elif hostile == "too_big":
        jwks_server.document = {"keys": good["keys"], "pad": "x" * (300 * 1024)}
    elif hostile == "not_json":
        jwks_server.raw = b"<html>hello</html>"
    elif hostile == "not_object":
        jwks_server.raw = b"[1, 2]"
    elif hostile == "no_usable_key":
        jwks_server.document = {
            "keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "x", "alg": "HS256"}]
        }
    else:
        jwks_server.document = {"keys": [keyset.active.private_jwk()]}
    v = _remote(jwks_server, clock)
    with pytest.raises(KeysUnavailable):
        v.verify(_token(issuer))
    with pytest.raises(KeysUnavailable):
        await v.averify(_token(issuer))
    assert jwks_server.hits == 1  # the failure is remembered for the cooldown


async def test_hostile_entry_skipped_good_entry_kept(
    jwks_server: JwksServer, keyset: KeySet, issuer: Issuer, clock: FrozenClock
) -> None:
    oct_key = {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256"}
    jwks_server.document = {"keys": [oct_key, *keyset.public_jwks()["keys"]]}
    v = _remote(jwks_server, clock)
    assert (await v.averify(_token(issuer)))["sub"] == "u1"
