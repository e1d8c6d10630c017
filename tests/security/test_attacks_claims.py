"""Attacks on the claim set and on token kinds; every token here carries a *valid* signature,
so each rejection proves the policy, not the signature check."""

from __future__ import annotations

import pytest

from dojang.clock import FrozenClock
from dojang.errors import (
    ExpiredToken,
    InvalidClaims,
    InvalidToken,
    LifetimeTooLong,
    NotYetValid,
    TokenAlreadyUsed,
    WrongTokenType,
)
from dojang.jose import Key, KeySet
from dojang.tokens import Issuer, MemoryReplayStore, OneTimeTokens
from dojang.verify import Verifier
from tests.security.jwt_forge import AUDIENCE, DROP, ISSUER, NOW, b64, claims, forge, header, unb64

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
T = int(NOW)


@pytest.mark.parametrize(
    "typ",
    [DROP, "JWT", "jwt", "at+jwt ", "at+jwt;x=1", "text/at+jwt", "ott+jwt", "secevent+jwt"],
)
def test_wrong_or_missing_typ(verifier: Verifier, key: Key, typ: object) -> None:
    """RFC 8725 §3.11 explicit typing: a plain JWT or another kind is not an access token."""
    with pytest.raises(WrongTokenType):
        verifier.verify(forge(header(key, typ=typ), claims(), key))


@pytest.mark.parametrize("typ", [None, "", 1, True, ["at+jwt"], {"t": "at+jwt"}])
def test_typ_of_wrong_json_type(verifier: Verifier, key: Key, typ: object) -> None:
    """Type confusion in `typ`: null, empty, numbers, arrays cannot match any kind."""
    with pytest.raises(InvalidToken):
        verifier.verify(forge(header(key, typ=typ), claims(), key))


def test_typ_media_type_spellings_accepted(verifier: Verifier, key: Key) -> None:
    """Control for the typ rule: RFC 7515 §4.1.9 equivalent spellings still verify."""
    for typ in ("AT+JWT", "application/at+jwt", "Application/At+Jwt"):
        assert verifier.verify(forge(header(key, typ=typ), claims(), key))["sub"] == "user-1"


async def test_one_time_token_as_access_token(
    issuer: Issuer, verifier: Verifier, keyset: KeySet
) -> None:
    """Token substitution: a one-time email link (even with a matching aud) is no access token."""
    ott = issuer.one_time_token(sub="user-1", purpose="reset", ttl=600, audience=AUDIENCE)
    with pytest.raises(WrongTokenType):
        verifier.verify(ott)
    with pytest.raises(WrongTokenType):
        await verifier.averify(ott)


async def test_access_token_as_one_time_token(
    issuer: Issuer, keyset: KeySet, clock: FrozenClock
) -> None:
    """Token substitution: an access token cannot be redeemed as a one-time token."""
    at = issuer.access_token(sub="user-1", audience=ISSUER, sid="s1", scope="x")
    ott = OneTimeTokens(keyset, MemoryReplayStore(clock=clock), issuer=ISSUER, clock=clock)
    with pytest.raises(WrongTokenType):
        await ott.redeem(at, purpose="reset")


@pytest.mark.parametrize(
    "exp",
    [DROP, None, str(T + 60), True, False, 10**20, 1e300, -1, [T + 60], {"t": T + 60}],
    ids=[
        "missing",
        "null",
        "string",
        "true",
        "false",
        "huge_int",
        "huge_float",
        "negative",
        "list",
        "obj",
    ],
)
def test_bad_exp(verifier: Verifier, key: Key, exp: object) -> None:
    """`exp` missing or not a sane NumericDate: lax checks turn these into "never expires"."""
    with pytest.raises(InvalidClaims):
        verifier.verify(forge(header(key), claims(exp=exp), key))


@pytest.mark.parametrize("iat", [DROP, None, "1800000000", True])
def test_bad_iat(verifier: Verifier, key: Key, iat: object) -> None:
    """`iat` is required (lifetime and per-user revocation depend on it) and must be a number."""
    with pytest.raises(InvalidClaims):
        verifier.verify(forge(header(key), claims(iat=iat), key))


def test_expired(verifier: Verifier, key: Key) -> None:
    """Expired token replay, just outside the leeway."""
    with pytest.raises(ExpiredToken):
        verifier.verify(forge(header(key), claims(iat=T - 100, exp=T - 5), key))


@pytest.mark.parametrize("name", ["nbf", "iat"])
def test_not_yet_valid(verifier: Verifier, key: Key, name: str) -> None:
    """Pre-dated tokens: `nbf` or `iat` in the future beyond the leeway."""
    values = {"nbf": T + 6} if name == "nbf" else {"iat": T + 6, "exp": T + 66}
    with pytest.raises(NotYetValid):
        verifier.verify(forge(header(key), claims(**values), key))


@pytest.mark.parametrize("lifetime", [901, 3600, 10**9])
def test_lifetime_over_maximum(verifier: Verifier, key: Key, lifetime: int) -> None:
    """A stolen signing path minting long-lived tokens: exp - iat over the maximum is refused."""
    with pytest.raises(LifetimeTooLong):
        verifier.verify(forge(header(key), claims(exp=T + lifetime), key))


@pytest.mark.parametrize("lifetime", [901, 86_400, 10**9])
@pytest.mark.parametrize("subject_kind", [None, "service"])
def test_service_token_lifetime_over_maximum(
    keyset: KeySet, key: Key, clock: FrozenClock, lifetime: int, subject_kind: str | None
) -> None:
    """A forged long-lived service token (client_credentials shape: no `sid`, `sub` ==
    `client_id`): over the 15-minute access maximum it is refused like a user token."""
    service = {"sid": DROP, "sub": "svc_reporter", "client_id": "svc_reporter"}
    v = Verifier(
        issuer=ISSUER,
        audience=AUDIENCE,
        jwks=keyset.public_jwks(),
        clock=clock,
        subject_kind=subject_kind,  # type: ignore[arg-type]
    )
    with pytest.raises(LifetimeTooLong):
        v.verify(forge(header(key), claims(exp=T + lifetime, **service), key))
    assert (
        v.verify(forge(header(key), claims(exp=T + 900, **service), key))["sub"] == "svc_reporter"
    )


@pytest.mark.parametrize("lifetime", [86_401, 604_801, 10**9])
async def test_one_time_token_lifetime_over_maximum(
    keyset: KeySet, key: Key, clock: FrozenClock, lifetime: int
) -> None:
    """A forged long-lived one-time link (validly signed, `exp - iat` over the one-time maximum
    of a day): refused at redemption, and nothing is recorded for its `jti`."""
    link = claims(aud=ISSUER, purpose="reset", sid=DROP, scope=DROP, client_id=DROP)
    ott = OneTimeTokens(keyset, MemoryReplayStore(clock=clock), issuer=ISSUER, clock=clock)
    with pytest.raises(LifetimeTooLong):
        await ott.redeem(
            forge(header(key, typ="ott+jwt"), {**link, "exp": T + lifetime}, key), purpose="reset"
        )
    # Control: the same link within the maximum (same jti: the refusal did not burn it).
    within = forge(header(key, typ="ott+jwt"), {**link, "exp": T + 86_400}, key)
    assert (await ott.redeem(within, purpose="reset"))["jti"] == link["jti"]


@pytest.mark.parametrize(
    "iss",
    [
        "https://auth.exampl",
        "https://auth.example.evil",
        "https://auth.example/",
        "https://auth.example:443",
        "HTTPS://auth.example",
        "https://AUTH.example",
        "",
        DROP,
        None,
        [ISSUER],
    ],
)
def test_issuer_confusion(verifier: Verifier, key: Key, iss: object) -> None:
    """Issuer confusion: sub-/superstrings and case variants of `iss` are other issuers."""
    with pytest.raises(InvalidClaims):
        verifier.verify(forge(header(key), claims(iss=iss), key))


@pytest.mark.parametrize(
    "aud",
    [
        [AUDIENCE],
        [AUDIENCE, "other"],
        ["other", AUDIENCE],
        [],
        "",
        " ",
        "orders-api ",
        "orders",
        DROP,
        None,
    ],
)
def test_audience_confusion(verifier: Verifier, key: Key, aud: object) -> None:
    """Cross-service replay (RFC 8725 §3.9): lists (even of one) and empty audiences."""
    with pytest.raises(InvalidClaims):
        verifier.verify(forge(header(key), claims(aud=aud), key))


@pytest.mark.parametrize("name", ["sub", "jti"])
@pytest.mark.parametrize("value", [DROP, None, "", 5, ["a"]])
def test_required_identifiers(verifier: Verifier, key: Key, name: str, value: object) -> None:
    """A token that names no subject (or has no id for revocation) authorizes nobody."""
    with pytest.raises(InvalidClaims):
        verifier.verify(forge(header(key), claims(**{name: value}), key))


@pytest.mark.parametrize("alg", ["ES256"])
async def test_ecdsa_malleated_one_time_token_replay(
    issuer: Issuer, keyset: KeySet, clock: FrozenClock
) -> None:
    """ECDSA malleability: (r, s) → (r, n - s) re-spells a used one-time token with a still-valid
    signature; redemption is keyed on `jti`, so the copy is a replay."""
    token = issuer.one_time_token(sub="user-1", purpose="reset", ttl=600)
    ott = OneTimeTokens(keyset, MemoryReplayStore(clock=clock), issuer=ISSUER, clock=clock)
    assert (await ott.redeem(token, purpose="reset"))["sub"] == "user-1"

    signing_input, sig_b64 = token.rsplit(".", 1)
    sig = unb64(sig_b64)
    s = int.from_bytes(sig[32:], "big")
    twin = f"{signing_input}.{b64(sig[:32] + (P256_N - s).to_bytes(32, 'big'))}"
    assert twin != token
    # The re-spelled signature is mathematically valid, so only the jti record stops it.
    verifier = Verifier(
        issuer=ISSUER, audience=ISSUER, jwks=keyset, typ="ott+jwt", clock=clock, max_lifetime=600
    )
    assert verifier.verify(twin)["jti"] == verifier.verify(token)["jti"]
    with pytest.raises(TokenAlreadyUsed):
        await ott.redeem(twin, purpose="reset")
    with pytest.raises(TokenAlreadyUsed):
        await ott.redeem(token, purpose="reset")


async def test_one_time_token_replay(issuer: Issuer, keyset: KeySet, clock: FrozenClock) -> None:
    """Replay of a used one-time link (password reset reused by whoever saw it second)."""
    token = issuer.one_time_token(sub="user-1", purpose="reset", ttl=600)
    ott = OneTimeTokens(keyset, MemoryReplayStore(clock=clock), issuer=ISSUER, clock=clock)
    await ott.redeem(token, purpose="reset")
    with pytest.raises(TokenAlreadyUsed):
        await ott.redeem(token, purpose="reset")


async def test_one_time_token_wrong_purpose(
    issuer: Issuer, keyset: KeySet, clock: FrozenClock
) -> None:
    """Purpose confusion: an email-verification link cannot reset a password (nor is it burnt)."""
    token = issuer.one_time_token(sub="user-1", purpose="verify-email", ttl=600)
    ott = OneTimeTokens(keyset, MemoryReplayStore(clock=clock), issuer=ISSUER, clock=clock)
    with pytest.raises(InvalidClaims):
        await ott.redeem(token, purpose="reset")
    assert (await ott.redeem(token, purpose="verify-email"))["sub"] == "user-1"


def test_token_signed_by_other_issuer_key(verifier: Verifier, key: Key) -> None:
    """A token from another deployment's key with our kid copied into it."""
    other = Key.generate(key.alg, kid=key.kid)
    with pytest.raises(InvalidToken):
        verifier.verify(forge(header(key), claims(), other))
