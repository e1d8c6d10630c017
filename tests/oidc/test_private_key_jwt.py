"""``private_key_jwt`` client authentication (RFC 7523 §2.2, §3; OIDC Core §9) at the token
endpoint: registration (API and CLI), the code flow and refresh with assertions signed by dojang's
own JOSE code and by Authlib/joserfc, and one test per way an assertion must be refused.

Everything runs against the in-process app on a real SQLite file; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from typer.testing import CliRunner

from dojang import Verifier
from dojang.accounts.clients import OIDCClient, RegistryError
from dojang.cli import app as cli_app
from dojang.clock import FrozenClock
from dojang.jose import Key, decode_segments, parse_json_object, sign_compact
from dojang.jose._b64 import b64url_encode
from dojang.oidc import client_auth
from tests.oidc.conftest import RP, TOKEN, Pkce, add_rp, get_code, redeem, refresh
from tests.server.conftest import Env, make_env

with warnings.catch_warnings():
    from authlib.deprecate import AuthlibDeprecationWarning

    warnings.simplefilter("ignore", AuthlibDeprecationWarning)  # httpx → httpx2 notice
    from authlib.integrations.httpx_client import AsyncOAuth2Client
    from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OKPKey, RSAKey

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
REDIRECT = "http://127.0.0.1:9/callback"
OMIT = "<omit>"


# --- helpers ----------------------------------------------------------------------------------


@dataclass
class JwtRP:
    """A relying party registered for private_key_jwt, with its private key(s)."""

    client: OIDCClient
    key: Key

    @property
    def client_id(self) -> str:
        """The client id."""
        return self.client.client_id

    @property
    def rp(self) -> RP:
        """The conftest view (no secret: ``redeem``/``refresh`` then send ``client_id``)."""
        return RP(self.client, None)


async def add_jwt_rp(
    env: Env, name: str = "jwt-shop", *, alg: str = "EdDSA", extra: Sequence[dict[str, Any]] = ()
) -> JwtRP:
    """Register a private_key_jwt client with one fresh key (plus ``extra`` public JWKs)."""
    key = Key.generate(alg)
    client, secret = await env.services.clients.add_oidc_client(
        name,
        client_type="confidential",
        redirect_uris=[REDIRECT],
        token_endpoint_auth_method="private_key_jwt",
        jwks={"keys": [key.public_jwk(), *extra]},
    )
    assert secret is None
    return JwtRP(client, key)


def token_endpoint(env: Env) -> str:
    """The URL assertions are addressed to."""
    return env.settings.issuer + TOKEN


def claims_for(env: Env, client_id: str, **overrides: Any) -> dict[str, Any]:
    """Well-formed assertion claims; an override of ``OMIT`` drops the claim."""
    now = int(env.clock.now())
    claims: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_endpoint(env),
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(16),
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v != OMIT}


def assertion(env: Env, rp: JwtRP, *, key: Key | None = None, **overrides: Any) -> str:
    """An assertion signed by dojang's own JOSE code (``typ: JWT``)."""
    return sign_compact(claims_for(env, rp.client_id, **overrides), key or rp.key, typ="JWT")


def raw_jws(header: Mapping[str, object], claims: Mapping[str, object], signature: bytes) -> str:
    """A compact JWS with any header and signature (for forgeries)."""
    h = b64url_encode(json.dumps(header).encode())
    p = b64url_encode(json.dumps(claims).encode())
    return f"{h}.{p}.{b64url_encode(signature)}"


def with_assertion(value: str, **extra: str) -> dict[str, str]:
    """The two form fields of JWT client authentication."""
    return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": value, **extra}


async def code_for(env: Env, rp: JwtRP) -> tuple[str, Pkce]:
    """Log alice in (once) and run authorize + consent for ``rp``."""
    if "dojang_session" not in env.client.cookies:
        assert (await env.login()).status_code == 201
    pkce = Pkce()
    code, _ = await get_code(env, rp.rp, pkce)
    return code, pkce


async def post_token(env: Env, data: dict[str, str], **kwargs: Any) -> httpx.Response:
    """POST a form to the token endpoint from a fresh client."""
    return await env.new_client().post(TOKEN, data=data, **kwargs)


def assert_invalid_client(r: httpx.Response) -> None:
    """RFC 6749 §5.2: 401 invalid_client, JSON, never cached."""
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "invalid_client"
    assert r.headers["cache-control"] == "no-store"


async def refused(env: Env, rp: JwtRP, value: str, **extra: str) -> httpx.Response:
    """Present ``value`` as the assertion of an otherwise valid code redemption."""
    code, pkce = await code_for(env, rp)
    return await redeem(env, rp.rp, code, pkce, **with_assertion(value, **extra))


def id_token_claims(env: Env, token: str, client_id: str) -> dict[str, Any]:
    """Verify an ID token dojang issued to ``client_id``."""
    return Verifier(
        issuer=env.settings.issuer,
        audience=client_id,
        jwks=env.services.keyset.public_jwks(),
        typ="JWT",
        clock=env.clock,
    ).verify(token)


# --- discovery --------------------------------------------------------------------------------


async def test_discovery_advertises_private_key_jwt(env: Env) -> None:
    meta = (await env.client.get("/.well-known/openid-configuration")).json()
    assert "private_key_jwt" in meta["token_endpoint_auth_methods_supported"]
    assert meta["token_endpoint_auth_signing_alg_values_supported"] == ["EdDSA", "ES256", "RS256"]
    assert meta["token_endpoint"] == token_endpoint(env)
    # RFC 8414 metadata describes the same token endpoint, so it says the same.
    oauth = (await env.client.get("/.well-known/oauth-authorization-server")).json()
    assert "private_key_jwt" in oauth["token_endpoint_auth_methods_supported"]
    assert oauth["token_endpoint_auth_signing_alg_values_supported"] == ["EdDSA", "ES256", "RS256"]


def test_advertised_algorithms_are_the_ones_the_jose_layer_verifies() -> None:
    from dojang.jose import ALGORITHMS

    assert set(client_auth.SIGNING_ALGORITHMS) == ALGORITHMS
    assert "none" not in client_auth.SIGNING_ALGORITHMS
    assert not any(a.startswith("HS") for a in client_auth.SIGNING_ALGORITHMS)


# --- happy paths --------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
async def test_code_flow_and_refresh_with_an_assertion(env: Env, alg: str) -> None:
    rp = await add_jwt_rp(env, alg=alg)
    code, pkce = await code_for(env, rp)
    r = await redeem(env, rp.rp, code, pkce, **with_assertion(assertion(env, rp)))
    assert r.status_code == 200, r.text
    body = r.json()
    assert id_token_claims(env, body["id_token"], rp.client_id)["aud"] == rp.client_id
    # Refresh with a new assertion (new jti), without client_id: sub identifies the client.
    r2 = await post_token(
        env,
        {
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
            **with_assertion(assertion(env, rp)),
        },
    )
    assert r2.status_code == 200, r2.text
    assert r2.json()["refresh_token"] != body["refresh_token"]


async def test_aud_may_be_the_issuer_or_an_array_of_this_server_only(env: Env) -> None:
    rp = await add_jwt_rp(env)
    issuer, endpoint = env.settings.issuer, token_endpoint(env)
    for aud in (issuer, [endpoint], [issuer, endpoint]):
        r = await refused(env, rp, assertion(env, rp, aud=aud))
        assert r.status_code == 200, (aud, r.text)


async def test_assertion_without_iat_or_kid_for_a_single_key_client(env: Env) -> None:
    """iat is optional (RFC 7523 §3); without kid the one registered key is unambiguous."""
    rp = await add_jwt_rp(env)
    claims = claims_for(env, rp.client_id, iat=OMIT)
    header = {"alg": "EdDSA"}
    h = b64url_encode(json.dumps(header).encode())
    p = b64url_encode(json.dumps(claims).encode())
    signed = f"{h}.{p}.{b64url_encode(rp.key.sign(f'{h}.{p}'.encode()))}"
    r = await refused(env, rp, signed)
    assert r.status_code == 200, r.text


async def test_rotated_keys_each_name_their_own_kid(env: Env) -> None:
    second = Key.generate("ES256")
    rp = await add_jwt_rp(env, extra=[second.public_jwk()])
    assert (await refused(env, rp, assertion(env, rp))).status_code == 200
    assert (await refused(env, rp, assertion(env, rp, key=second))).status_code == 200


async def test_same_jti_from_two_clients_is_two_assertions(env: Env) -> None:
    """Replay records are per client: one client cannot burn another's jti."""
    a = await add_jwt_rp(env, "rp-a")
    b = await add_jwt_rp(env, "rp-b")
    assert (await refused(env, a, assertion(env, a, jti="shared"))).status_code == 200
    assert (await refused(env, b, assertion(env, b, jti="shared"))).status_code == 200


# --- interop: assertions built by Authlib / joserfc ---------------------------------------------


def _authlib_sign(env: Env, key: Any, client_id: str, alg: str, **kwargs: Any) -> str:
    with warnings.catch_warnings():
        # joserfc flags "EdDSA" as superseded by RFC 9864's "Ed25519"; dojang speaks EdDSA.
        warnings.simplefilter("ignore", SecurityWarning)
        signed: str | bytes = private_key_jwt_sign(
            key,
            client_id,
            token_endpoint(env),
            alg=alg,
            issued_at=int(env.clock.now()),
            expires_in=60,
            **kwargs,
        )
    return signed.decode() if isinstance(signed, bytes) else signed


async def test_authlib_ed25519_assertion_code_flow_and_refresh(env: Env) -> None:
    rp = await add_jwt_rp(env)
    key = OKPKey.import_key(rp.key.private_jwk())
    code, pkce = await code_for(env, rp)
    signed = _authlib_sign(env, key, rp.client_id, "EdDSA", header={"kid": rp.key.kid})
    r = await redeem(env, rp.rp, code, pkce, **with_assertion(signed))
    assert r.status_code == 200, r.text
    again = _authlib_sign(env, key, rp.client_id, "EdDSA", header={"kid": rp.key.kid})
    r2 = await refresh(env, rp.rp, r.json()["refresh_token"], **with_assertion(again))
    assert r2.status_code == 200, r2.text


async def test_authlib_es256_assertion_without_kid(env: Env) -> None:
    rp = await add_jwt_rp(env, alg="ES256")
    signed = _authlib_sign(env, ECKey.import_key(rp.key.private_jwk()), rp.client_id, "ES256")
    assert "kid" not in decode_segments(signed)[0]
    assert (await refused(env, rp, signed)).status_code == 200


async def test_authlib_rs256_assertion(env: Env) -> None:
    """RS256 (verify-only in dojang) with a client RSA key, Authlib's default algorithm."""
    private = RSAKey.generate_key(2048, private=True)
    public = {**private.as_dict(private=False), "kid": "rsa-1", "alg": "RS256"}
    client, _ = await env.services.clients.add_oidc_client(
        "rsa-rp",
        client_type="confidential",
        redirect_uris=[REDIRECT],
        token_endpoint_auth_method="private_key_jwt",
        jwks={"keys": [public]},
    )
    rp = JwtRP(client, Key.generate())  # the dojang key is unused: Authlib signs
    signed = _authlib_sign(env, private, rp.client_id, "RS256", header={"kid": "rsa-1"})
    assert (await refused(env, rp, signed)).status_code == 200


class ShortLivedPrivateKeyJWT(PrivateKeyJWT):  # type: ignore[misc]
    """Authlib's PrivateKeyJWT with a 60 s assertion instead of its default hour."""

    def sign(self, auth: Any, token_endpoint: str) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SecurityWarning)
            return private_key_jwt_sign(
                auth.client_secret,
                client_id=auth.client_id,
                token_endpoint=token_endpoint,
                header=self.headers,
                alg=self.alg,
                expires_in=60,
            )


async def test_authlib_oauth2_client_end_to_end(tmp_path: Path) -> None:
    """Authlib's own OAuth 2.0 client drives the flow with private_key_jwt (wall clock)."""
    async for env in make_env(tmp_path, FrozenClock(time.time())):
        rp = await add_jwt_rp(env)
        meta = (await env.client.get("/.well-known/openid-configuration")).json()
        async with AsyncOAuth2Client(
            rp.client_id,
            OKPKey.import_key(rp.key.private_jwk()),
            scope="openid profile",
            redirect_uri=REDIRECT,
            code_challenge_method="S256",
            token_endpoint_auth_method="private_key_jwt",
            transport=env.client._transport,
            leeway=5,
        ) as client:
            client.register_client_auth_method(
                ShortLivedPrivateKeyJWT(
                    meta["token_endpoint"], headers={"kid": rp.key.kid}, alg="EdDSA"
                )
            )
            verifier = secrets.token_urlsafe(48)
            url, _ = client.create_authorization_url(
                meta["authorization_endpoint"], code_verifier=verifier, nonce="n-1"
            )
            await env.login()
            from tests.oidc.conftest import allow, client_url

            answer = await allow(env.client, await env.client.get(url))
            token = await client.fetch_token(
                meta["token_endpoint"],
                authorization_response=client_url(answer),
                code_verifier=verifier,
            )
            assert id_token_claims(env, token["id_token"], rp.client_id)["nonce"] == "n-1"
            refreshed = await client.refresh_token(
                meta["token_endpoint"], refresh_token=token["refresh_token"]
            )
            assert refreshed["access_token"] != token["access_token"]


async def test_authlib_default_one_hour_assertion_is_refused(env: Env) -> None:
    """Authlib signs for 3600 s by default; dojang accepts at most MAX_LIFETIME."""
    rp = await add_jwt_rp(env)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        signed = private_key_jwt_sign(
            OKPKey.import_key(rp.key.private_jwk()),
            rp.client_id,
            token_endpoint(env),
            alg="EdDSA",
            issued_at=int(env.clock.now()),
            header={"kid": rp.key.kid},
        )
    r = await refused(env, rp, signed.decode() if isinstance(signed, bytes) else signed)
    assert_invalid_client(r)
    assert "300 s" in r.json()["error_description"]


# --- signature and key selection ----------------------------------------------------------------


async def test_wrong_key_with_the_registered_kid(env: Env) -> None:
    rp = await add_jwt_rp(env)
    impostor = Key.from_jwk({**Key.generate().private_jwk(), "kid": rp.key.kid})
    assert_invalid_client(await refused(env, rp, assertion(env, rp, key=impostor)))


async def test_unknown_kid(env: Env) -> None:
    rp = await add_jwt_rp(env)
    stranger = Key.generate()  # kid is its own thumbprint, not registered
    assert_invalid_client(await refused(env, rp, assertion(env, rp, key=stranger)))


async def test_no_kid_is_ambiguous_with_several_keys(env: Env) -> None:
    rp = await add_jwt_rp(env, extra=[Key.generate().public_jwk()])
    claims = claims_for(env, rp.client_id)
    h = b64url_encode(json.dumps({"alg": "EdDSA"}).encode())
    p = b64url_encode(json.dumps(claims).encode())
    signed = f"{h}.{p}.{b64url_encode(rp.key.sign(f'{h}.{p}'.encode()))}"
    assert_invalid_client(await refused(env, rp, signed))


async def test_alg_must_be_the_algorithm_bound_to_the_key(env: Env) -> None:
    """An ES256 signature presented under the kid of the client's Ed25519 key is refused."""
    es = Key.generate("ES256")
    rp = await add_jwt_rp(env, extra=[es.public_jwk()])
    claims = claims_for(env, rp.client_id)
    h = b64url_encode(json.dumps({"alg": "ES256", "kid": rp.key.kid, "typ": "JWT"}).encode())
    p = b64url_encode(json.dumps(claims).encode())
    signed = f"{h}.{p}.{b64url_encode(es.sign(f'{h}.{p}'.encode()))}"
    assert_invalid_client(await refused(env, rp, signed))


@pytest.mark.parametrize("signature", [b"", b"x" * 64])
async def test_alg_none(env: Env, signature: bytes) -> None:
    rp = await add_jwt_rp(env)
    forged = raw_jws({"alg": "none", "kid": rp.key.kid}, claims_for(env, rp.client_id), signature)
    assert_invalid_client(await refused(env, rp, forged))


async def test_hs256_with_the_public_key_as_the_secret(env: Env) -> None:
    """The classic key-confusion forgery: HMAC keyed with the registered public key."""
    rp = await add_jwt_rp(env)
    public = ed25519.Ed25519PublicKey.from_public_bytes(
        base64.urlsafe_b64decode(rp.key.public_jwk()["x"] + "=")
    )
    secrets_tried = [
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        json.dumps(rp.key.public_jwk()).encode(),
        public.public_bytes_raw(),
    ]
    for secret in secrets_tried:
        h = b64url_encode(json.dumps({"alg": "HS256", "kid": rp.key.kid}).encode())
        p = b64url_encode(json.dumps(claims_for(env, rp.client_id)).encode())
        mac = hmac.new(secret, f"{h}.{p}".encode(), hashlib.sha256).digest()
        assert_invalid_client(await refused(env, rp, f"{h}.{p}.{b64url_encode(mac)}"))


async def test_embedded_jwk_header_is_refused(env: Env) -> None:
    """A key carried in the header (RFC 8725 §3.10) is never trusted."""
    rp = await add_jwt_rp(env)
    attacker = Key.generate()
    header = {"alg": "EdDSA", "kid": rp.key.kid, "jwk": attacker.public_jwk()}
    h = b64url_encode(json.dumps(header).encode())
    p = b64url_encode(json.dumps(claims_for(env, rp.client_id)).encode())
    signed = f"{h}.{p}.{b64url_encode(attacker.sign(f'{h}.{p}'.encode()))}"
    assert_invalid_client(await refused(env, rp, signed))


async def test_other_token_types_are_refused(env: Env) -> None:
    rp = await add_jwt_rp(env)
    claims = claims_for(env, rp.client_id)
    signed = sign_compact(claims, rp.key, typ="logout+jwt")
    r = await refused(env, rp, signed)
    assert_invalid_client(r)
    assert "typ" in r.json()["error_description"]


# --- claims ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "aud",
    [
        "https://evil.example/oauth2/token",
        "http://127.0.0.1:8000/oauth2/authorize",
        ["http://127.0.0.1:8000/oauth2/token", "https://evil.example/oauth2/token"],
        [],
        OMIT,
        42,
    ],
)
async def test_wrong_aud(env: Env, aud: Any) -> None:
    rp = await add_jwt_rp(env)
    assert env.settings.issuer == "http://127.0.0.1:8000"
    r = await refused(env, rp, assertion(env, rp, aud=aud))
    assert_invalid_client(r)
    assert "aud" in r.json()["error_description"]


async def test_expired(env: Env) -> None:
    rp = await add_jwt_rp(env)
    now = int(env.clock.now())
    r = await refused(env, rp, assertion(env, rp, iat=now - 120, exp=now - 60))
    assert_invalid_client(r)
    assert "expired" in r.json()["error_description"]


async def test_expiry_within_the_leeway_is_accepted_once(env: Env) -> None:
    rp = await add_jwt_rp(env)
    now = int(env.clock.now())
    signed = assertion(env, rp, iat=now - 60, exp=now - client_auth.LEEWAY + 5)
    assert (await refused(env, rp, signed)).status_code == 200
    assert_invalid_client(await refused(env, rp, signed))


@pytest.mark.parametrize(
    ("iat", "exp"),
    [(0, 3600), (0, client_auth.MAX_LIFETIME + 1), (OMIT, 3600), (-200, 200), (0, 0), (10, 5)],
)
async def test_lifetime_too_long_or_inverted(env: Env, iat: Any, exp: int) -> None:
    """exp - iat is bounded, and exp is never further away than MAX_LIFETIME (+ leeway)."""
    rp = await add_jwt_rp(env)
    now = int(env.clock.now())
    r = await refused(
        env, rp, assertion(env, rp, iat=iat if iat == OMIT else now + iat, exp=now + exp)
    )
    assert_invalid_client(r)


async def test_iat_and_nbf_in_the_future(env: Env) -> None:
    rp = await add_jwt_rp(env)
    now = int(env.clock.now())
    assert_invalid_client(await refused(env, rp, assertion(env, rp, iat=now + 120, exp=now + 180)))
    assert_invalid_client(await refused(env, rp, assertion(env, rp, nbf=now + 120)))


@pytest.mark.parametrize("claim", ["jti", "exp", "iss", "sub"])
async def test_missing_claim(env: Env, claim: str) -> None:
    rp = await add_jwt_rp(env)
    assert_invalid_client(await refused(env, rp, assertion(env, rp, **{claim: OMIT})))


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("jti", ""),
        ("jti", 7),
        ("jti", "j" * 257),
        ("exp", "soon"),
        ("exp", True),
        ("exp", 10**400),  # an integer no float can hold
        ("iat", 1e308),
        ("nbf", [1]),
    ],
)
async def test_malformed_claim(env: Env, claim: str, value: Any) -> None:
    rp = await add_jwt_rp(env)
    assert_invalid_client(await refused(env, rp, assertion(env, rp, **{claim: value})))


async def test_replayed_assertion(env: Env) -> None:
    rp = await add_jwt_rp(env)
    signed = assertion(env, rp)
    code, pkce = await code_for(env, rp)
    first = await redeem(env, rp.rp, code, pkce, **with_assertion(signed))
    assert first.status_code == 200, first.text
    again = await refresh(env, rp.rp, first.json()["refresh_token"], **with_assertion(signed))
    assert_invalid_client(again)
    assert "already used" in again.json()["error_description"]
    # A freshly signed assertion reusing the jti is the same replay.
    jti = parse_json_object(decode_segments(signed)[1])["jti"]
    env.clock.advance(1)
    resigned = assertion(env, rp, jti=jti)
    assert resigned != signed
    assert_invalid_client(await refused(env, rp, resigned))


async def test_concurrent_replays_authenticate_once(env: Env) -> None:
    """The replay store's atomic redeem: of N racing uses of one assertion, one wins."""
    rp = await add_jwt_rp(env)
    signed = assertion(env, rp)
    data = {"grant_type": "refresh_token", "refresh_token": "x" * 43, **with_assertion(signed)}
    results = await asyncio.gather(*(post_token(env, data) for _ in range(8)))
    # The one that authenticated gets past client authentication to the (bogus) grant.
    statuses = sorted(r.status_code for r in results)
    assert statuses == [400] + [401] * 7, [r.text for r in results]
    assert next(r for r in results if r.status_code == 400).json()["error"] == "invalid_grant"


async def test_iss_differs_from_sub(env: Env) -> None:
    rp = await add_jwt_rp(env)
    other = await add_jwt_rp(env, "other")
    r = await refused(env, rp, assertion(env, rp, iss=other.client_id))
    assert_invalid_client(r)
    assert "iss" in r.json()["error_description"]


async def test_client_id_must_match_the_assertion(env: Env) -> None:
    rp = await add_jwt_rp(env)
    other = await add_jwt_rp(env, "other")
    r = await refused(env, rp, assertion(env, rp), client_id=other.client_id)
    assert_invalid_client(r)


async def test_code_of_another_client_is_still_refused(env: Env) -> None:
    """Authenticating as B with B's key does not let B redeem A's code."""
    a = await add_jwt_rp(env, "rp-a")
    b = await add_jwt_rp(env, "rp-b")
    code, pkce = await code_for(env, a)
    r = await redeem(env, b.rp, code, pkce, **with_assertion(assertion(env, b)))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


# --- the registered method decides --------------------------------------------------------------


async def test_assertion_for_a_secret_registered_client(env: Env) -> None:
    secret_rp = await add_rp(env, "secret-rp")
    key = Key.generate()
    claims = claims_for(env, secret_rp.client_id)
    signed = sign_compact(claims, key, typ="JWT")
    code, pkce = await code_for(env, JwtRP(secret_rp.client, key))
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": pkce.verifier,
        **with_assertion(signed),
    }
    assert_invalid_client(await post_token(env, data))


async def test_assertion_for_a_public_client(env: Env) -> None:
    public = await add_rp(env, "spa", client_type="public")
    signed = sign_compact(claims_for(env, public.client_id), Key.generate(), typ="JWT")
    data = {"grant_type": "refresh_token", "refresh_token": "x" * 43, **with_assertion(signed)}
    assert_invalid_client(await post_token(env, data))


@pytest.mark.parametrize("transport", ["basic", "post", "client_id only"])
async def test_secret_or_nothing_for_a_jwt_registered_client(env: Env, transport: str) -> None:
    rp = await add_jwt_rp(env)
    code, pkce = await code_for(env, rp)
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": pkce.verifier,
    }
    guess = secrets.token_urlsafe(32)
    if transport == "basic":
        r = await post_token(env, data, auth=httpx.BasicAuth(rp.client_id, guess))
    elif transport == "post":
        r = await post_token(env, {**data, "client_id": rp.client_id, "client_secret": guess})
    else:
        r = await post_token(env, {**data, "client_id": rp.client_id})
    assert_invalid_client(r)
    # The code was not consumed by the failed attempts: the right method still works.
    ok = await redeem(env, rp.rp, code, pkce, **with_assertion(assertion(env, rp)))
    assert ok.status_code == 200, ok.text


async def test_no_secret_hash_can_match(env: Env) -> None:
    """Clients without a secret store a hash no SHA-256 digest equals, even of ''."""
    rp = await add_jwt_rp(env)
    for guess in ("", "-" * 64, "None"):
        r = await post_token(
            env,
            {"grant_type": "refresh_token", "refresh_token": "x" * 43},
            auth=httpx.BasicAuth(rp.client_id, guess),
        )
        assert_invalid_client(r)


@pytest.mark.parametrize("other", ["basic", "client_secret"])
async def test_two_methods_at_once(env: Env, other: str) -> None:
    rp = await add_jwt_rp(env)
    secret_rp = await add_rp(env, "secret-rp")
    assert secret_rp.secret is not None
    data = {"grant_type": "refresh_token", "refresh_token": "x" * 43}
    data.update(with_assertion(assertion(env, rp)))
    if other == "basic":
        r = await post_token(env, data, auth=httpx.BasicAuth(secret_rp.client_id, secret_rp.secret))
    else:
        r = await post_token(env, {**data, "client_secret": secret_rp.secret})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_request"


# --- malformed input: 401, never a 500 -----------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "",
        "abc",
        "a.b",
        "a.b.c",
        "eyJhbGciOiJFZERTQSJ9..",
        "eyJhbGciOiJFZERTQSJ9.e30.AAAA",  # valid JWS shape, claims without sub
        "é.é.é",
        "x" * (client_auth.MAX_ASSERTION_BYTES + 1),
    ],
)
async def test_malformed_or_oversized_assertion(env: Env, value: str) -> None:
    rp = await add_jwt_rp(env)
    assert_invalid_client(await refused(env, rp, value))


async def test_oversized_well_formed_assertion(env: Env) -> None:
    rp = await add_jwt_rp(env)
    padding = "p" * client_auth.MAX_ASSERTION_BYTES
    claims = claims_for(env, rp.client_id, padding=padding)
    h = b64url_encode(json.dumps({"alg": "EdDSA", "kid": rp.key.kid}).encode())
    p = b64url_encode(json.dumps(claims).encode())
    signed = f"{h}.{p}.{b64url_encode(rp.key.sign(f'{h}.{p}'.encode()))}"
    r = await refused(env, rp, signed)
    assert_invalid_client(r)
    assert "too large" in r.json()["error_description"]


@pytest.mark.parametrize(
    "fields",
    [
        {"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"},
        {"client_assertion_type": ASSERTION_TYPE},
        {"client_assertion": "<signed>"},
    ],
)
async def test_incomplete_or_unsupported_assertion_parameters(
    env: Env, fields: dict[str, str]
) -> None:
    rp = await add_jwt_rp(env)
    data = {"grant_type": "refresh_token", "refresh_token": "x" * 43}
    for name, value in fields.items():
        data[name] = assertion(env, rp) if value == "<signed>" else value
    assert_invalid_client(await post_token(env, data))


async def test_unknown_client_in_sub(env: Env) -> None:
    rp = await add_jwt_rp(env)
    assert_invalid_client(
        await refused(env, rp, assertion(env, rp, iss="svc_nobody", sub="svc_nobody"))
    )


async def test_failures_are_audited_and_never_logged_with_the_assertion(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    rp = await add_jwt_rp(env)
    signed = assertion(env, rp, aud="https://evil.example/")
    with caplog.at_level("DEBUG"):
        assert_invalid_client(await refused(env, rp, signed))
    assert signed not in caplog.text
    assert signed.split(".")[2] not in caplog.text
    records = await env.services.audit.search(action="client.auth_failure", limit=5)
    assert records


# --- registration: API ----------------------------------------------------------------------------


async def test_registered_keys_are_stored_public_and_normalised(env: Env) -> None:
    key = Key.generate("ES256")
    submitted = {**key.public_jwk(), "x5u": "https://evil.example/cert", "ext": True}
    del submitted["alg"]  # inferred for P-256
    client, secret = await env.services.clients.add_oidc_client(
        "stored",
        client_type="confidential",
        redirect_uris=[REDIRECT],
        token_endpoint_auth_method="private_key_jwt",
        jwks={"keys": [submitted]},
    )
    assert secret is None
    found = await env.services.clients.get_oidc_client(client.client_id)
    assert found is not None and found.token_endpoint_auth_method == "private_key_jwt"
    stored = json.loads(found.jwks or "")
    assert stored == {"keys": [key.public_jwk()]}
    assert client_auth.client_keys(found).get(key.kid).alg == "ES256"


async def test_secret_clients_default_to_client_secret_basic(env: Env) -> None:
    rp = await add_rp(env, "plain")
    assert rp.client.token_endpoint_auth_method == "client_secret_basic" and rp.secret
    public = await add_rp(env, "spa", client_type="public")
    assert public.client.token_endpoint_auth_method == "none" and public.secret is None


# --- registration: CLI ------------------------------------------------------------------------

runner = CliRunner()
FAST = {
    "DOJANG_ARGON2_TIME_COST": "1",
    "DOJANG_ARGON2_MEMORY_COST": "8",
    "DOJANG_ARGON2_PARALLELISM": "1",
}


def _cli_env(tmp_path: Path) -> dict[str, str]:
    return {"DOJANG_DATA_DIR": str(tmp_path / "data"), **FAST}


def _jwks_file(tmp_path: Path, *jwks: Mapping[str, object], name: str = "client.jwks") -> str:
    path = tmp_path / name
    path.write_text(json.dumps({"keys": list(jwks)}))
    return str(path)


@dataclass
class CliResult:
    """Exit code and output of one CLI run, whitespace-normalised (rich wraps long lines)."""

    exit_code: int
    output: str


def _cli_add(tmp_path: Path, name: str, *extra: str) -> CliResult:
    result = runner.invoke(
        cli_app,
        ["clients", "add", name, "--type", "confidential", "--redirect-uri", REDIRECT, *extra],
        env=_cli_env(tmp_path),
    )
    return CliResult(result.exit_code, " ".join(result.output.split()))


async def test_cli_registered_client_authenticates_with_its_key(tmp_path: Path) -> None:
    key = Key.generate()
    jwks = _jwks_file(tmp_path, key.public_jwk())
    args = ("--token-endpoint-auth-method", "private_key_jwt", "--jwks-file", jwks)
    # The CLI runs its own event loop: give it a thread.
    result = await asyncio.to_thread(_cli_add, tmp_path, "cli-rp", *args)
    assert result.exit_code == 0, result.output
    assert "client_secret" not in result.output
    assert "token_endpoint_auth_method: private_key_jwt" in result.output
    assert key.kid in result.output
    client_id = result.output.split("client_id: ", 1)[1].split()[0]
    async for env in make_env(tmp_path, FrozenClock()):
        client = await env.services.clients.get_oidc_client(client_id)
        assert client is not None
        rp = JwtRP(client, key)
        code, pkce = await code_for(env, rp)
        r = await redeem(env, rp.rp, code, pkce, **with_assertion(assertion(env, rp)))
        assert r.status_code == 200, r.text


def _okp_private() -> dict[str, str]:
    return Key.generate().private_jwk()


def _rsa_private() -> dict[str, Any]:
    key = RSAKey.generate_key(2048, private=True)
    return {**key.as_dict(private=True), "kid": "rsa", "alg": "RS256"}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (_okp_private(), "private member 'd'"),
        (_rsa_private(), "private member 'd'"),
        ({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256"}, "symmetric"),
    ],
)
def test_cli_refuses_a_jwks_with_private_members(
    tmp_path: Path, entry: dict[str, Any], message: str
) -> None:
    jwks = _jwks_file(tmp_path, entry)
    result = _cli_add(
        tmp_path, "leaky", "--token-endpoint-auth-method", "private_key_jwt", "--jwks-file", jwks
    )
    assert result.exit_code == 2, result.output
    assert message in result.output and "PUBLIC" in result.output
    assert "Traceback" not in result.output
    for member in ("d", "p", "k"):  # the key material is never echoed
        assert member not in entry or entry[member] not in result.output
    listed = runner.invoke(cli_app, ["clients", "list"], env=_cli_env(tmp_path))
    assert "leaky" not in listed.output


def _rsa_public(bits: int = 2048, **extra: Any) -> dict[str, Any]:
    numbers = rsa.generate_private_key(65537, bits).public_key().public_numbers()

    def b64(n: int) -> str:
        return b64url_encode(n.to_bytes((n.bit_length() + 7) // 8, "big"))

    return {"kty": "RSA", "n": b64(numbers.n), "e": b64(numbers.e), "kid": "rsa", **extra}


@pytest.mark.parametrize(
    ("jwks", "message"),
    [
        ([], "1 to 16 keys"),
        ([{**Key.generate().public_jwk(), "kid": "same"}] * 2, "not unique"),
        ([{k: v for k, v in Key.generate().public_jwk().items() if k != "kid"}], "kid"),
        ([_rsa_public()], "requires alg RS256"),
        ([_rsa_public(1024, alg="RS256")], "shorter than 2048"),
        ([{**Key.generate().public_jwk(), "use": "enc"}], "use"),
        ([{**Key.generate().public_jwk(), "alg": "ES256"}], "requires alg EdDSA"),
        ([{"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA", "kid": "p384"}], "P-256"),
    ],
)
def test_cli_refuses_unusable_jwks(tmp_path: Path, jwks: list[Any], message: str) -> None:
    path = _jwks_file(tmp_path, *jwks)
    result = _cli_add(
        tmp_path, "bad", "--token-endpoint-auth-method", "private_key_jwt", "--jwks-file", path
    )
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output


def test_cli_refuses_inconsistent_options(tmp_path: Path) -> None:
    jwks = _jwks_file(tmp_path, Key.generate().public_jwk())
    no_keys = _cli_add(tmp_path, "a", "--token-endpoint-auth-method", "private_key_jwt")
    assert no_keys.exit_code == 1 and "--jwks-file" in no_keys.output
    keys_for_secret = _cli_add(tmp_path, "b", "--jwks-file", jwks)
    assert keys_for_secret.exit_code == 1 and "private_key_jwt" in keys_for_secret.output
    public = runner.invoke(
        cli_app,
        [
            "clients",
            "add",
            "c",
            "--type",
            "public",
            "--redirect-uri",
            REDIRECT,
            "--token-endpoint-auth-method",
            "private_key_jwt",
            "--jwks-file",
            jwks,
        ],
        env=_cli_env(tmp_path),
    )
    assert public.exit_code == 1 and "public client" in " ".join(public.output.split())
    unknown = _cli_add(tmp_path, "d", "--token-endpoint-auth-method", "client_secret_jwt")
    assert unknown.exit_code == 1 and "must be one of" in unknown.output
    missing = _cli_add(
        tmp_path, "e", "--token-endpoint-auth-method", "private_key_jwt", "--jwks-file", "/nope"
    )
    assert missing.exit_code == 2 and "cannot read" in missing.output
    (tmp_path / "dup.json").write_text('{"keys": [], "keys": []}')
    dup = _cli_add(
        tmp_path,
        "f",
        "--token-endpoint-auth-method",
        "private_key_jwt",
        "--jwks-file",
        str(tmp_path / "dup.json"),
    )
    assert dup.exit_code == 2 and "duplicate" in dup.output
    listed = runner.invoke(cli_app, ["clients", "list"], env=_cli_env(tmp_path)).output
    assert not any(f" {n} " in listed for n in "abcdef")


def test_cli_secret_client_still_prints_its_secret(tmp_path: Path) -> None:
    result = _cli_add(tmp_path, "classic", "--token-endpoint-auth-method", "client_secret_post")
    assert result.exit_code == 0, result.output
    assert "client_secret: " in result.output
    assert "token_endpoint_auth_method: client_secret_post" in result.output


# --- key rotation -----------------------------------------------------------------------------


async def test_set_keys_rotates_a_clients_keys(env: Env) -> None:
    rp = await add_jwt_rp(env, "rotating")
    new = Key.generate("ES256")
    reg = env.services.clients
    # Step 1: old + new; both sign.
    await reg.set_oidc_jwks(rp.client_id, {"keys": [rp.key.public_jwk(), new.public_jwk()]})
    assert (await refused(env, rp, assertion(env, rp))).status_code == 200
    assert (await refused(env, rp, assertion(env, rp, key=new))).status_code == 200
    # Step 2: new only; the old key is refused from the next assertion on.
    updated = await reg.set_oidc_jwks("rotating", {"keys": [new.public_jwk()]})
    assert updated.client_id == rp.client_id
    assert_invalid_client(await refused(env, rp, assertion(env, rp)))
    assert (await refused(env, rp, assertion(env, rp, key=new))).status_code == 200


async def test_set_keys_refuses_secret_clients_private_keys_and_unknown_names(env: Env) -> None:
    reg = env.services.clients
    secret_rp = await add_rp(env, "secret-shop")
    key = Key.generate()
    with pytest.raises(RegistryError, match="does not use private_key_jwt"):
        await reg.set_oidc_jwks(secret_rp.client_id, {"keys": [key.public_jwk()]})
    with pytest.raises(RegistryError, match="no client"):
        await reg.set_oidc_jwks("nobody", {"keys": [key.public_jwk()]})
    rp = await add_jwt_rp(env, "careful")
    with pytest.raises(RegistryError, match="private member"):
        await reg.set_oidc_jwks(rp.client_id, {"keys": [_okp_private()]})
    # Nothing changed: the registered key still works.
    assert (await refused(env, rp, assertion(env, rp))).status_code == 200


async def test_cli_set_keys(tmp_path: Path) -> None:
    old, new = Key.generate(), Key.generate("ES256")
    args = ("--token-endpoint-auth-method", "private_key_jwt")
    added = await asyncio.to_thread(
        _cli_add, tmp_path, "cli-rot", *args, "--jwks-file", _jwks_file(tmp_path, old.public_jwk())
    )
    assert added.exit_code == 0, added.output

    def set_keys(*jwks: Mapping[str, object]) -> CliResult:
        path = _jwks_file(tmp_path, *jwks, name="new.jwks")
        result = runner.invoke(
            cli_app, ["clients", "set-keys", "cli-rot", "--jwks-file", path], env=_cli_env(tmp_path)
        )
        return CliResult(result.exit_code, " ".join(result.output.split()))

    done = await asyncio.to_thread(set_keys, new.public_jwk())
    assert done.exit_code == 0, done.output
    assert new.kid in done.output and old.kid not in done.output
    leaked = await asyncio.to_thread(set_keys, _okp_private())
    assert leaked.exit_code == 2 and "private member" in leaked.output
    assert "Traceback" not in leaked.output
