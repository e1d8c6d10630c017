"""Issuer: claim sets per kind, lifetimes, argument validation, byte-exact encoding, jti ids."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dojang.clock import FrozenClock
from dojang.errors import ConfigError, InvalidClaims, LifetimeTooLong
from dojang.jose import KeySet, decode_segments, sign_compact, verify_compact
from dojang.tokens import ACCESS_TYP, ONE_TIME_TYP, Issuer, normalize_scope, token_kind

ISS = "https://auth.example"


@pytest.fixture(params=["EdDSA", "ES256"])
def keyset(request: pytest.FixtureRequest) -> KeySet:
    return KeySet.generate(str(request.param))


@pytest.fixture
def issuer(keyset: KeySet, clock: FrozenClock) -> Issuer:
    return Issuer(keyset, issuer=ISS, clock=clock)


def _open(token: str, keyset: KeySet) -> tuple[dict[str, object], dict[str, object]]:
    header, payload = verify_compact(token, keyset, ["EdDSA", "ES256"])
    return header, json.loads(payload)


def test_access_token_claims(issuer: Issuer, keyset: KeySet, clock: FrozenClock) -> None:
    token = issuer.access_token(
        sub="u1", audience="orders", scope=["b", "a", "b"], sid="s1", client_id="web"
    )
    header, claims = _open(token, keyset)
    assert header == {"alg": keyset.active.alg, "kid": keyset.active.kid, "typ": ACCESS_TYP}
    now = int(clock.now())
    assert claims == {
        "iss": ISS,
        "sub": "u1",
        "aud": "orders",
        "exp": now + 60,
        "iat": now,
        "jti": claims["jti"],
        "sid": "s1",
        "client_id": "web",
        "scope": "b a",
    }
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 22
    assert token_kind(claims) == "user"


def test_header_matches_reference_codec(issuer: Issuer, keyset: KeySet) -> None:
    """The precomputed header segment is byte-identical to dojang.jose.sign_compact's."""
    token = issuer.access_token(sub="u1", audience="a", sid="s")
    reference = sign_compact(b"{}", keyset.active, typ=ACCESS_TYP)
    assert token.split(".")[0] == reference.split(".")[0]


def test_jti_unique(issuer: Issuer) -> None:
    jtis = {
        decode_segments(issuer.access_token(sub="u", audience="a", sid="s"))[1] for _ in range(50)
    }
    assert len(jtis) == 50


def test_token_exchange_act_claim(issuer: Issuer, keyset: KeySet) -> None:
    token = issuer.access_token(
        sub="u1", audience="billing", sid="s1", client_id="orders", act={"sub": "orders"}
    )
    assert _open(token, keyset)[1]["act"] == {"sub": "orders"}
    with pytest.raises(InvalidClaims):
        issuer.access_token(sub="u1", audience="b", sid="s1", act={"client": "x"})


def test_service_token(issuer: Issuer, keyset: KeySet) -> None:
    header, claims = _open(
        issuer.service_token(client_id="batch", audience="orders", scope="orders:read"), keyset
    )
    assert header["typ"] == ACCESS_TYP
    assert claims["sub"] == claims["client_id"] == "batch"
    assert "sid" not in claims
    assert token_kind(claims) == "service"


def test_user_token_cannot_look_like_service_token(issuer: Issuer) -> None:
    with pytest.raises(InvalidClaims):
        issuer.access_token(sub="batch", audience="a", sid=None, client_id="batch")


def test_one_time_token(issuer: Issuer, keyset: KeySet) -> None:
    token = issuer.one_time_token(sub="u1", purpose="reset", ttl=900, data={"n": 1})
    header, claims = _open(token, keyset)
    assert header["typ"] == ONE_TIME_TYP
    assert claims["aud"] == ISS and claims["purpose"] == "reset" and claims["data"] == {"n": 1}
    assert claims["exp"] - claims["iat"] == 900  # type: ignore[operator]


@pytest.mark.parametrize("ttl", [901, 3600])
def test_access_lifetime_cap(issuer: Issuer, ttl: int) -> None:
    with pytest.raises(LifetimeTooLong):
        issuer.access_token(sub="u", audience="a", sid="s", ttl=ttl)
    with pytest.raises(LifetimeTooLong):
        issuer.service_token(client_id="c", audience="a", scope="", ttl=ttl)


def test_one_time_lifetime_cap(issuer: Issuer) -> None:
    with pytest.raises(LifetimeTooLong):
        issuer.one_time_token(sub="u", purpose="p", ttl=86_401)
    assert issuer.one_time_token(sub="u", purpose="p", ttl=86_400)


@pytest.mark.parametrize("ttl", [0, -1, 1.5, True, "60"])
def test_bad_ttl(issuer: Issuer, ttl: object) -> None:
    with pytest.raises(InvalidClaims):
        issuer.access_token(sub="u", audience="a", sid="s", ttl=ttl)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sub": ""},
        {"sub": "x" * 256},
        {"audience": ""},
        {"audience": ["a"]},
        {"sid": ""},
        {"client_id": ""},
        {"scope": 'a"b'},
        {"scope": ["a b"]},
        {"scope": [""]},
    ],
)
def test_bad_access_token_arguments(issuer: Issuer, kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"sub": "u", "audience": "a", "sid": "s"} | kwargs
    with pytest.raises(InvalidClaims):
        issuer.access_token(**args)  # type: ignore[arg-type]


def test_unserializable_data(issuer: Issuer) -> None:
    with pytest.raises(InvalidClaims):
        issuer.one_time_token(sub="u", purpose="p", ttl=60, data={"x": float("nan")})
    with pytest.raises(InvalidClaims):
        issuer.one_time_token(sub="u", purpose="p", ttl=60, data={"x": object()})


def test_normalize_scope() -> None:
    assert normalize_scope("a  b a") == "a b"
    assert normalize_scope(("x", "y")) == "x y"
    assert normalize_scope("") == ""


@pytest.mark.parametrize(
    "kwargs",
    [
        {"issuer": ""},
        {"access_ttl": 0},
        {"access_ttl": 901},
        {"max_ttl": {"access": 901}},
        {"max_ttl": {"forever": 1}},
        {"max_ttl": {"one_time": 10**7}},
        {"max_ttl": {"access": 30}, "access_ttl": 60},
    ],
)
def test_config_errors(keyset: KeySet, kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"issuer": ISS} | kwargs
    with pytest.raises(ConfigError):
        Issuer(keyset, **args)  # type: ignore[arg-type]


def test_lowered_max_ttl(keyset: KeySet) -> None:
    issuer = Issuer(keyset, issuer=ISS, access_ttl=30, max_ttl={"access": 120, "one_time": 600})
    with pytest.raises(LifetimeTooLong):
        issuer.access_token(sub="u", audience="a", sid="s", ttl=121)
    with pytest.raises(LifetimeTooLong):
        issuer.one_time_token(sub="u", purpose="p", ttl=601)


def test_rotation_signs_with_new_active_key(keyset: KeySet, clock: FrozenClock) -> None:
    issuer = Issuer(keyset, issuer=ISS, clock=clock)
    first = decode_segments(issuer.access_token(sub="u", audience="a", sid="s"))[0]["kid"]
    new = keyset.rotate(now=clock.now())
    second = decode_segments(issuer.access_token(sub="u", audience="a", sid="s"))[0]["kid"]
    assert first != second == new.kid


def test_no_key_material_in_repr(issuer: Issuer) -> None:
    assert repr(issuer) == f"Issuer(issuer={ISS!r})"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), {1, 2}, b"bytes", object()])
def test_claims_that_are_not_json_are_refused(issuer: Issuer, bad: object) -> None:
    with pytest.raises(InvalidClaims):
        issuer.one_time_token(sub="u", purpose="p", ttl=60, data={"x": bad})


def test_lone_surrogates_are_refused(issuer: Issuer) -> None:
    """A string that is not valid Unicode cannot become UTF-8 claims."""
    with pytest.raises(InvalidClaims):
        issuer.access_token(sub="u\udc80", audience="a", sid="s")


_IDENTIFIER = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(
    sub=_IDENTIFIER,
    audience=_IDENTIFIER,
    sid=st.none() | _IDENTIFIER,
    client_id=st.none() | _IDENTIFIER,
    scope=st.sampled_from(["", "a", "orders:read orders:write", "b a b"]),
    act=st.none() | st.fixed_dictionaries({"sub": _IDENTIFIER}),
)
def test_access_payload_is_the_json_encoders_byte_for_byte(
    sub: str,
    audience: str,
    sid: str | None,
    client_id: str | None,
    scope: str,
    act: dict[str, str] | None,
) -> None:
    """Access and service tokens are formatted directly; the bytes are json's, in claim order."""
    keyset = KeySet.generate("EdDSA")
    issuer = Issuer(keyset, issuer='https://auth.example/"quoted"\\path', clock=FrozenClock())
    if sid is None and client_id is not None and client_id == sub:
        sid = "s"  # that shape is a service token, refused from access_token
    token = issuer.access_token(
        sub=sub, audience=audience, sid=sid, client_id=client_id, scope=scope, act=act
    )
    service = issuer.service_token(client_id=sub, audience=audience, scope=scope)
    for minted, expect_sid, expect_client, expect_act in (
        (token, sid, client_id, act),
        (service, None, sub, None),
    ):
        payload = decode_segments(minted)[1]
        claims = json.loads(payload)
        expected: dict[str, Any] = {
            "iss": issuer.issuer,
            "sub": sub,
            "aud": audience,
            "exp": claims["exp"],
            "iat": claims["iat"],
            "jti": claims["jti"],
        }
        if expect_sid is not None:
            expected["sid"] = expect_sid
        if expect_client is not None:
            expected["client_id"] = expect_client
        if normalize_scope(scope):
            expected["scope"] = normalize_scope(scope)
        if expect_act is not None:
            expected["act"] = expect_act
        encoded = json.dumps(expected, separators=(",", ":"), ensure_ascii=False)
        assert payload == encoded.encode("utf-8")


def test_jti_batches_encode_each_id_on_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """One encoder call per batch gives exactly the per-id base64url of each 16 random bytes."""
    import base64
    import os

    from dojang.tokens.issuer import _JtiSource

    drawn: list[bytes] = []
    real = os.urandom

    def recording(n: int) -> bytes:
        drawn.append(real(n))
        return drawn[-1]

    source = _JtiSource()
    monkeypatch.setattr(os, "urandom", recording)
    ids = [source.take() for _ in range(_JtiSource._BATCH)]
    assert len(drawn) == 1 and len(drawn[0]) == 16 * _JtiSource._BATCH
    raw = drawn[0]
    expected = {
        base64.urlsafe_b64encode(raw[i : i + 16]).rstrip(b"=").decode()
        for i in range(0, len(raw), 16)
    }
    assert set(ids) == expected and len(ids) == len(expected)
    source.take()
    assert len(drawn) == 2  # the batch was used up, each id once


def test_a_forked_child_never_reuses_the_parents_jtis() -> None:
    """Ids buffered before fork() are dropped in the child, so the two never share one."""
    import os

    from dojang.tokens.issuer import _JtiSource

    source = _JtiSource()
    parent_first = source.take()  # fills the buffer: 255 ids left in it
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report the ids it would mint next, then leave at once
        try:
            os.write(write, " ".join(source.take() for _ in range(5)).encode())
        finally:
            os._exit(0)
    os.close(write)
    child_ids = set(os.read(read, 4096).decode().split())
    os.close(read)
    os.waitpid(pid, 0)
    parent_next = {source.take() for _ in range(255)}
    assert len(child_ids) == 5
    assert not child_ids & (parent_next | {parent_first})
