"""Fixtures for the attack suite: a real key set, issuer and verifier at a frozen time."""

from __future__ import annotations

import pytest

from dojang.clock import FrozenClock
from dojang.jose import Key, KeySet
from dojang.tokens import Issuer
from dojang.verify import Verifier
from tests.security.jwt_forge import AUDIENCE, ISSUER, NOW


@pytest.fixture(params=["EdDSA", "ES256"])
def alg(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def keyset(alg: str) -> KeySet:
    return KeySet.generate(alg)


@pytest.fixture
def key(keyset: KeySet) -> Key:
    return keyset.active


@pytest.fixture
def issuer(keyset: KeySet, clock: FrozenClock) -> Issuer:
    return Issuer(keyset, issuer=ISSUER, clock=clock)


@pytest.fixture
def verifier(keyset: KeySet, clock: FrozenClock) -> Verifier:
    return Verifier(issuer=ISSUER, audience=AUDIENCE, jwks=keyset.public_jwks(), clock=clock)
