"""Verifier behaviour beyond the attack suite: happy paths, config, revocation, fail-closed."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytest

from dojang.clock import FrozenClock
from dojang.errors import (
    AlgorithmNotAllowed,
    BadSignature,
    ConfigError,
    ExpiredToken,
    InvalidToken,
    MalformedToken,
    NotYetValid,
    RevokedToken,
    UnknownKey,
    WrongTokenType,
)
from dojang.jose import KeySet, decode_segments
from dojang.tokens import Issuer
from dojang.verify import DenyList, Verifier
from tests.verify.conftest import AUD, ISS


def _verifier(keyset: KeySet, clock: FrozenClock, **kw: Any) -> Verifier:
    return Verifier(issuer=ISS, audience=AUD, jwks=keyset.public_jwks(), clock=clock, **kw)


async def test_sync_and_async_return_claims(
    issuer: Issuer, keyset: KeySet, clock: FrozenClock
) -> None:
    v = _verifier(keyset, clock)
    token = issuer.access_token(sub="u1", audience=AUD, sid="s1", scope="a b")
    assert v.verify(token)["sub"] == "u1"
    assert (await v.averify(token))["scope"] == "a b"


def test_keyset_object_follows_rotation(issuer: Issuer, keyset: KeySet, clock: FrozenClock) -> None:
    v = Verifier(issuer=ISS, audience=AUD, jwks=keyset, clock=clock)
    old = issuer.access_token(sub="u1", audience=AUD, sid="s1")
    keyset.rotate(now=clock.now(), keep_for=60)
    new = issuer.access_token(sub="u1", audience=AUD, sid="s1")
    assert v.verify(old) and v.verify(new)
    keyset.purge(now=clock.now() + 61)
    with pytest.raises(UnknownKey):
        v.verify(old)


def test_service_tokens_verify(issuer: Issuer, keyset: KeySet, clock: FrozenClock) -> None:
    v = _verifier(keyset, clock)
    claims = v.verify(issuer.service_token(client_id="batch", audience=AUD, scope="x"))
    assert claims["sub"] == "batch" and "sid" not in claims


def test_leeway_applied_once(issuer: Issuer, keyset: KeySet, clock: FrozenClock) -> None:
    v = _verifier(keyset, clock, leeway=5)
    token = issuer.access_token(sub="u1", audience=AUD, sid="s1", ttl=60)
    clock.advance(64.9)
    assert v.verify(token)
    clock.advance(0.1)
    with pytest.raises(ExpiredToken):
        v.verify(token)


def test_iat_slightly_in_future_within_leeway(keyset: KeySet, clock: FrozenClock) -> None:
    ahead = Issuer(keyset, issuer=ISS, clock=FrozenClock(clock.now() + 5))
    further = Issuer(keyset, issuer=ISS, clock=FrozenClock(clock.now() + 6))
    v = _verifier(keyset, clock)
    assert v.verify(ahead.access_token(sub="u", audience=AUD, sid="s"))
    with pytest.raises(NotYetValid):
        v.verify(further.access_token(sub="u", audience=AUD, sid="s"))


def test_revocation_by_sid_jti_and_user(issuer: Issuer, keyset: KeySet, clock: FrozenClock) -> None:
    deny = DenyList(clock=clock)
    v = _verifier(keyset, clock, revocations=deny)
    t1 = issuer.access_token(sub="u1", audience=AUD, sid="s1")
    t2 = issuer.access_token(sub="u1", audience=AUD, sid="s2")
    t3 = issuer.access_token(sub="u2", audience=AUD, sid="s3")
    assert v.verify(t1) and v.verify(t2) and v.verify(t3)
    exp = clock.now() + 900
    deny.add_sid("s1", exp)
    with pytest.raises(RevokedToken):
        v.verify(t1)
    assert v.verify(t2)
    deny.add_jti(str(decode_segments(t3)[1].decode().split('"jti":"')[1].split('"')[0]), exp)
    with pytest.raises(RevokedToken):
        v.verify(t3)
    deny.revoke_user_before("u1", clock.now() + 1, exp)
    with pytest.raises(RevokedToken):
        v.verify(t2)
    clock.advance(2)
    assert v.verify(issuer.access_token(sub="u1", audience=AUD, sid="s9"))


class _Broken:
    def is_revoked(self, claims: Mapping[str, Any]) -> bool:
        raise RuntimeError("store down")


def test_unexpected_error_fails_closed(
    issuer: Issuer, keyset: KeySet, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A revocation view that breaks must deny, and the log must not contain the token."""
    v = _verifier(keyset, clock, revocations=_Broken())
    token = issuer.access_token(sub="u1", audience=AUD, sid="s1")
    with caplog.at_level(logging.ERROR, logger="dojang.security"), pytest.raises(InvalidToken):
        v.verify(token)
    assert "RuntimeError" in caplog.text
    assert token not in caplog.text and token.split(".")[2] not in caplog.text


async def test_unexpected_error_fails_closed_async(
    issuer: Issuer, keyset: KeySet, clock: FrozenClock
) -> None:
    v = _verifier(keyset, clock, revocations=_Broken())
    with pytest.raises(InvalidToken):
        await v.averify(issuer.access_token(sub="u1", audience=AUD, sid="s1"))


def test_error_messages_do_not_echo_the_token(keyset: KeySet, clock: FrozenClock) -> None:
    v = _verifier(keyset, clock)
    secret = "eyJhbGciOiJFZERTQSJ9.c2VjcmV0LXBheWxvYWQ.c2ln"
    with pytest.raises(InvalidToken) as info:
        v.verify(secret)
    assert "c2VjcmV0LXBheWxvYWQ" not in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"issuer": ""},
        {"audience": ""},
        {"algorithms": "EdDSA"},
        {"algorithms": []},
        {"algorithms": ["HS256"]},
        {"typ": ""},
        {"leeway": -1},
        {"leeway": float("nan")},
        {"max_lifetime": 0},
        {"jwks": "http://auth.example/jwks.json"},
        {"jwks": "ftp://127.0.0.1/jwks.json"},
        {"jwks": "https://user:pw@auth.example/jwks.json"},
        {"jwks": 42},
        {"jwks": {"keys": []}},
        {"revocations": "ftp://auth.example/feed"},
        {"revocations": object()},
    ],
)
def test_config_errors(keyset: KeySet, kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"issuer": ISS, "audience": AUD, "jwks": keyset.public_jwks()} | kwargs
    with pytest.raises(ConfigError):
        Verifier(**args)


def test_config_reports_every_problem(keyset: KeySet) -> None:
    with pytest.raises(ConfigError) as info:
        Verifier(issuer="", audience="", jwks=keyset.public_jwks(), leeway=-1)
    assert len(info.value.problems) == 3


# --- the remembered-header fast path --------------------------------------------------------


def _respell(token: str, **header: object) -> str:
    """The token with its header replaced (the signature then no longer matches)."""
    import base64
    import json

    encoded = base64.urlsafe_b64encode(json.dumps(header, separators=(",", ":")).encode())
    return encoded.rstrip(b"=").decode() + token[token.index(".") :]


def _bad_payload(token: str) -> str:
    h, _, s = token.split(".")
    return f"{h}.a.{s}"  # one base64url character: an impossible length


@pytest.mark.parametrize("seen_before", [False, True])
def test_errors_do_not_depend_on_whether_the_header_was_seen(
    issuer: Issuer, keyset: KeySet, clock: FrozenClock, seen_before: bool
) -> None:
    """A header the Verifier remembers skips its decoding, never a check or the check order."""
    v = _verifier(keyset, clock)
    good = issuer.access_token(sub="u1", audience=AUD, sid="s1")
    one_time = issuer.one_time_token(sub="u1", purpose="reset", ttl=60, audience=AUD)
    if seen_before:
        assert v.verify(good)["sub"] == "u1"
        with pytest.raises(WrongTokenType):
            v.verify(one_time)
    with pytest.raises(MalformedToken, match="payload"):
        v.verify(_bad_payload(good))  # base64 errors come before the typ check...
    with pytest.raises(MalformedToken, match="payload"):
        v.verify(_bad_payload(one_time))
    with pytest.raises(WrongTokenType):
        v.verify(one_time)  # ...and a refused header is never remembered as good
    with pytest.raises(WrongTokenType):
        v.verify(one_time)
    kid = decode_segments(good)[0]["kid"]
    with pytest.raises(AlgorithmNotAllowed):
        v.verify(_respell(good, alg="ES256", kid=kid, typ="at+jwt"))  # EdDSA key
    with pytest.raises(BadSignature):
        v.verify(_respell(good, kid=kid, typ="at+jwt", alg="EdDSA"))  # same header, respelled


def test_remembered_headers_are_per_verifier_and_bounded(
    issuer: Issuer, keyset: KeySet, clock: FrozenClock
) -> None:
    access = _verifier(keyset, clock)
    one_time = _verifier(keyset, clock, typ="ott+jwt")
    token = issuer.access_token(sub="u1", audience=AUD, sid="s1")
    assert access.verify(token)
    with pytest.raises(WrongTokenType):
        one_time.verify(token)  # what one Verifier admitted means nothing to another
    kid = decode_segments(token)[0]["kid"]
    for n in range(200):
        # 200 distinct headers that all pass the header checks (typ compares without case),
        # as a hostile client could send: each is remembered, the memory stays bounded.
        typ = "".join(c.upper() if (n >> i) & 1 else c for i, c in enumerate("application/at+jwt"))
        with pytest.raises(BadSignature):
            access.verify(_respell(token, alg="EdDSA", kid=kid, typ=typ))
    assert 0 < len(access._headers) <= 64
    assert access.verify(token)["sub"] == "u1"
