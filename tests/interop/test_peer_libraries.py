"""Interop: PyJWT and joserfc accept our tokens, and we accept theirs (EdDSA and ES256)."""

from __future__ import annotations

import json
from typing import Any

import jwt as pyjwt
import pytest
from joserfc import jwt as jrfc_jwt
from joserfc.jwk import KeySet as JrfcKeySet

from dojang.clock import SYSTEM_CLOCK
from dojang.jose import KeySet
from dojang.tokens import Issuer
from dojang.verify import Verifier

# joserfc >= 1.1 warns that the JOSE name "EdDSA" is deprecated by RFC 9864 in favour of
# "Ed25519"; the signatures are identical. dojang still emits "EdDSA" (what PyJWT and most
# verifiers expect today), so the warning is expected here and only here.
pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated via RFC 9864")

ISS = "https://auth.example"
AUD = "orders-api"


@pytest.fixture(params=["EdDSA", "ES256"])
def keyset(request: pytest.FixtureRequest) -> KeySet:
    return KeySet.generate(str(request.param))


def _our_token(keyset: KeySet) -> str:
    return Issuer(keyset, issuer=ISS, clock=SYSTEM_CLOCK).access_token(
        sub="u1", audience=AUD, sid="s1", scope="orders:read", client_id="web"
    )


def _claims() -> dict[str, Any]:
    now = int(SYSTEM_CLOCK.now())
    return {"iss": ISS, "sub": "u1", "aud": AUD, "exp": now + 60, "iat": now, "jti": "peer-1"}


def test_pyjwt_verifies_our_tokens(keyset: KeySet) -> None:
    jwk = keyset.public_jwks()["keys"][0]
    key = pyjwt.PyJWK(jwk)
    token = _our_token(keyset)
    assert pyjwt.get_unverified_header(token)["typ"] == "at+jwt"
    claims = pyjwt.decode(token, key, algorithms=[keyset.active.alg], audience=AUD, issuer=ISS)
    assert claims["sub"] == "u1" and claims["sid"] == "s1"


def test_joserfc_verifies_our_tokens(keyset: KeySet) -> None:
    keys = JrfcKeySet.import_key_set(keyset.public_jwks())  # type: ignore[arg-type]
    token = jrfc_jwt.decode(_our_token(keyset), keys, algorithms=[keyset.active.alg])
    jrfc_jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISS}, aud={"essential": True, "value": AUD}
    ).validate(token.claims)
    assert token.header["typ"] == "at+jwt" and token.claims["sub"] == "u1"


def test_we_verify_pyjwt_tokens(keyset: KeySet) -> None:
    key = keyset.active
    private = pyjwt.PyJWK(key.private_jwk())
    token = pyjwt.encode(
        _claims(), private.key, algorithm=key.alg, headers={"kid": key.kid, "typ": "at+jwt"}
    )
    verifier = Verifier(issuer=ISS, audience=AUD, jwks=keyset.public_jwks())
    assert verifier.verify(token)["jti"] == "peer-1"


def test_we_verify_joserfc_tokens(keyset: KeySet) -> None:
    key = keyset.active
    document: Any = {"keys": [key.private_jwk()]}
    private = JrfcKeySet.import_key_set(document)
    header = {"alg": key.alg, "kid": key.kid, "typ": "at+jwt"}
    token = jrfc_jwt.encode(header, _claims(), private, algorithms=[key.alg])
    verifier = Verifier(issuer=ISS, audience=AUD, jwks=json.loads(json.dumps(keyset.public_jwks())))
    assert verifier.verify(token)["sub"] == "u1"
