"""Attacks on the JOSE header and the signature: each test names the attack it stops."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from dojang.clock import FrozenClock
from dojang.errors import (
    AlgorithmNotAllowed,
    BadSignature,
    ConfigError,
    InvalidToken,
    UnknownKey,
    UnsupportedHeader,
)
from dojang.jose import Key, KeySet
from dojang.verify import Verifier
from tests.security.jwt_forge import (
    AUDIENCE,
    DROP,
    ISSUER,
    b64,
    claims,
    forge,
    header,
    segment,
    unb64,
)

ED25519_L = 2**252 + 27742317777372353535851937790883648493
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def test_control_valid_forged_token_verifies(verifier: Verifier, key: Key) -> None:
    """Control: the forging helpers build tokens the verifier accepts, so every rejection
    below is caused by the one thing each test changes."""
    assert verifier.verify(forge(header(key), claims(), key))["sub"] == "user-1"


@pytest.mark.parametrize("none", ["none", "None", "NONE", "nOnE", "NoNe"])
@pytest.mark.parametrize("signed", [False, True])
def test_alg_none_any_case(verifier: Verifier, key: Key, none: str, signed: bool) -> None:
    """CVE-2015-9235: unsecured JWS (`alg: none`) in any spelling, with or without a signature."""
    head = header(key, alg=none)
    token = forge(head, claims(), key if signed else None)
    with pytest.raises(InvalidToken):
        verifier.verify(token)
    # The empty-signature form without the trailing segment content is refused as well.
    with pytest.raises(InvalidToken):
        verifier.verify(token.rsplit(".", 1)[0] + ".")


@pytest.mark.parametrize("mangle", ["zeros", "empty", "one_byte", "half", "minus_one"])
def test_null_and_truncated_signatures(verifier: Verifier, key: Key, mangle: str) -> None:
    """Null (all-zero) and truncated signatures must never verify."""
    good = forge(header(key), claims(), key)
    sig = unb64(good.rsplit(".", 1)[1])
    bad = {
        "zeros": bytes(len(sig)),
        "empty": b"",
        "one_byte": sig[:1],
        "half": sig[: len(sig) // 2],
        "minus_one": sig[:-1],
    }[mangle]
    with pytest.raises(InvalidToken):
        verifier.verify(good.rsplit(".", 1)[0] + "." + b64(bad))


def _public_encodings(key: Key) -> dict[str, bytes]:
    pub = _public_object(key)
    pem = pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    raw_format = (
        (serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        if isinstance(pub, ed25519.Ed25519PublicKey)
        else (serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    jwk = key.public_jwk()
    return {
        "pem_lf": pem,
        "pem_crlf": pem.replace(b"\n", b"\r\n"),
        "pem_no_newline": pem.rstrip(b"\n"),
        "pem_extra_whitespace": b"  " + pem + b"\n\n ",
        "der": pub.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "raw": pub.public_bytes(*raw_format),
        "jwk_json": json.dumps(jwk).encode(),
        "jwk_json_compact": json.dumps(jwk, separators=(",", ":")).encode(),
        "openssh": pub.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ),
    }


def _public_object(key: Key) -> ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey:
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    jwk = key.public_jwk()
    if jwk["kty"] == "OKP":
        return ed25519.Ed25519PublicKey.from_public_bytes(unb64(jwk["x"]))
    point = b"\x04" + unb64(jwk["x"]) + unb64(jwk["y"])
    pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    return load_der_public_key(
        pub.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )  # type: ignore[return-value]


@pytest.mark.parametrize("hs", ["HS256", "HS384", "HS512", "hs256"])
@pytest.mark.parametrize(
    "encoding",
    [
        "pem_lf",
        "pem_crlf",
        "pem_no_newline",
        "pem_extra_whitespace",
        "der",
        "raw",
        "jwk_json",
        "jwk_json_compact",
        "openssh",
    ],
)
def test_hmac_with_public_key_as_secret(
    verifier: Verifier, key: Key, hs: str, encoding: str
) -> None:
    """Algorithm confusion (CVE-2016-10555): HS* MAC keyed with our *public* key in any encoding."""
    secret = _public_encodings(key)[encoding]
    signing_input = (
        f"{b64(json.dumps(header(key, alg=hs)).encode())}.{b64(json.dumps(claims()).encode())}"
    )
    digest = {"hs256": hashlib.sha256, "HS256": hashlib.sha256, "HS384": hashlib.sha384}.get(
        hs, hashlib.sha512
    )
    mac = hmac.new(secret, signing_input.encode(), digest).digest()
    with pytest.raises(AlgorithmNotAllowed):
        verifier.verify(f"{signing_input}.{b64(mac)}")


@pytest.mark.parametrize("bad_alg", ["HS256", "none", "PS256", "ES512"])
def test_allow_list_refuses_hmac_and_unknown_algorithms(keyset: KeySet, bad_alg: str) -> None:
    """Algorithm confusion at configuration time: HMAC or `none` can never be allow-listed."""
    jwks = keyset.public_jwks()
    with pytest.raises(ConfigError):
        Verifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks, algorithms=[bad_alg])


def test_header_alg_disagreeing_with_key_alg(verifier: Verifier, key: Key) -> None:
    """RFC 8725 §3.1: the header may not choose another allowed algorithm than the key's."""
    other = "ES256" if key.alg == "EdDSA" else "EdDSA"
    with pytest.raises(AlgorithmNotAllowed):
        verifier.verify(forge(header(key, alg=other), claims(), key))


def test_key_alg_outside_allow_list(keyset: KeySet, key: Key) -> None:
    """A trusted key whose alg is not allow-listed here cannot be used."""
    others = {"EdDSA", "ES256"} - {key.alg}
    v = Verifier(issuer=ISSUER, audience=AUDIENCE, jwks=keyset.public_jwks(), algorithms=others)
    with pytest.raises(AlgorithmNotAllowed):
        v.verify(forge(header(key), claims(), key))


@pytest.mark.parametrize("signer", ["attacker", "ours"])
def test_embedded_jwk_is_refused(verifier: Verifier, key: Key, signer: str) -> None:
    """Key injection (CVE-2018-0114): a `jwk` header naming the attacker's own key."""
    attacker = Key.generate(key.alg, kid=key.kid)
    head = header(key, jwk=attacker.public_jwk())
    with pytest.raises(UnsupportedHeader):
        verifier.verify(forge(head, claims(), attacker if signer == "attacker" else key))


class _Counter(BaseHTTPRequestHandler):
    hits = 0
    body = b'{"keys":[]}'

    def do_GET(self) -> None:
        type(self).hits += 1
        body = self.body
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@contextmanager
def _counting_server(body: bytes) -> Iterator[tuple[str, type[_Counter]]]:
    """A loopback endpoint answering ``body`` to every GET and counting the requests."""
    handler = type("Counting", (_Counter,), {"hits": 0, "body": body})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/jwks.json", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def trap_server() -> Iterator[tuple[str, type[_Counter]]]:
    with _counting_server(b'{"keys":[]}') as trap:
        yield trap


@pytest.mark.parametrize("param", ["jku", "x5u"])
async def test_jku_and_x5u_make_no_request(
    keyset: KeySet, key: Key, trap_server: tuple[str, type[_Counter]], param: str
) -> None:
    """SSRF/key injection via `jku`/`x5u` (RFC 8725 §3.10): refused, and nothing is fetched."""
    url, handler = trap_server
    v = Verifier(issuer=ISSUER, audience=AUDIENCE, jwks=keyset.public_jwks())
    token = forge(header(key, **{param: url}), claims(), key)
    with pytest.raises(UnsupportedHeader):
        v.verify(token)
    with pytest.raises(UnsupportedHeader):
        await v.averify(token)
    # Same with an unknown kid, which would otherwise be the moment to go fetching keys.
    with pytest.raises(InvalidToken):
        v.verify(forge(header(key, kid="not-ours", **{param: url}), claims(), key))
    assert handler.hits == 0


@pytest.mark.parametrize("param", ["jku", "x5u"])
async def test_jku_and_x5u_make_no_request_with_a_remote_jwks(
    keyset: KeySet,
    key: Key,
    clock: FrozenClock,
    trap_server: tuple[str, type[_Counter]],
    param: str,
) -> None:
    """SSRF/key injection via `jku`/`x5u` against a verifier that does fetch keys over HTTP:
    the header URL is never fetched, and the token does not even trigger the configured JWKS
    fetch (no refetch storm on the real endpoint either)."""
    trap_url, trap = trap_server
    with _counting_server(json.dumps(keyset.public_jwks()).encode()) as (jwks_url, jwks):
        v = Verifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks_url, jwks_cooldown=0, clock=clock)
        for kid in (key.kid, "not-ours"):
            token = forge(header(key, kid=kid, **{param: trap_url}), claims(), key)
            with pytest.raises(UnsupportedHeader):
                v.verify(token)
            with pytest.raises(UnsupportedHeader):
                await v.averify(token)
        assert trap.hits == 0 and jwks.hits == 0
        # Control: the same verifier does fetch its configured JWKS for a clean token.
        assert v.verify(forge(header(key), claims(), key))["sub"] == "user-1"
        assert jwks.hits == 1 and trap.hits == 0


def test_x5c_is_refused(verifier: Verifier, key: Key) -> None:
    """Key injection via an `x5c` certificate chain in the header."""
    head = header(key, x5c=[b64(b"0\x82\x01\x00 not really a certificate")])
    with pytest.raises(UnsupportedHeader):
        verifier.verify(forge(head, claims(), key))


@pytest.mark.parametrize(
    "kid",
    [
        "../../../../../../dev/null",
        "..\\..\\windows\\win.ini",
        "/etc/passwd",
        "' OR '1'='1",
        "x'; DROP TABLE keys; --",
        "$(touch /tmp/pwned)",
        "`id`",
        "key|cat /etc/shadow",
        "\u0000",
        "k" * 257,
    ],
)
def test_hostile_kid_values(verifier: Verifier, key: Key, kid: str) -> None:
    """Injection through `kid` (path traversal, SQL, shell): only an exact lookup, never a use."""
    with pytest.raises(InvalidToken):
        verifier.verify(forge(header(key, kid=kid), claims(), key))


@pytest.mark.parametrize("kid", ["", " ", "\t", DROP, 7, None])
def test_blank_or_missing_kid(verifier: Verifier, key: Key, kid: object) -> None:
    """A missing or blank kid must not fall back to "the only key" or "try every key"."""
    with pytest.raises(InvalidToken):
        verifier.verify(forge(header(key, kid=kid), claims(), key))


def test_unknown_kid_with_right_signature(verifier: Verifier, key: Key) -> None:
    """Kid confusion: a correct signature does not make an unknown kid acceptable."""
    with pytest.raises(UnknownKey):
        verifier.verify(forge(header(key, kid=key.kid + "x"), claims(), key))


@pytest.mark.parametrize("alg", ["ES256"])
@pytest.mark.parametrize(
    "sig",
    [
        bytes(64),
        P256_N.to_bytes(32, "big") * 2,
        (P256_N + 1).to_bytes(32, "big") * 2,
        (1).to_bytes(32, "big") * 2,
        b"\xff" * 64,
    ],
    ids=["zero", "r_s_n", "n_plus_1", "one_one", "all_ff"],
)
def test_ecdsa_psychic_signatures(verifier: Verifier, key: Key, sig: bytes) -> None:
    """CVE-2022-21449 "psychic signatures": r = s = 0, r = s = n and other degenerate values."""
    with pytest.raises(BadSignature):
        verifier.verify(forge(header(key), claims(), signature=sig))


@pytest.mark.parametrize("alg", ["ES256"])
def test_ecdsa_der_signature(verifier: Verifier, key: Key) -> None:
    """RFC 7518 §3.4: a DER-encoded ECDSA signature (a different, valid signature spelling)."""
    good = forge(header(key), claims(), key)
    raw = unb64(good.rsplit(".", 1)[1])
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    with pytest.raises(BadSignature):
        verifier.verify(good.rsplit(".", 1)[0] + "." + b64(der))


@pytest.mark.parametrize("alg", ["EdDSA"])
def test_ed25519_non_canonical_s(verifier: Verifier, key: Key) -> None:
    """RFC 8032 §5.1.7 malleability: S + L verifies in lax libraries; it must not here."""
    good = forge(header(key), claims(), key)
    raw = unb64(good.rsplit(".", 1)[1])
    s = int.from_bytes(raw[32:], "little") + ED25519_L
    assert s < 2**256
    with pytest.raises(BadSignature):
        verifier.verify(good.rsplit(".", 1)[0] + "." + b64(raw[:32] + s.to_bytes(32, "little")))


@pytest.mark.parametrize(
    "crit",
    [
        {"crit": ["exp"], "exp": 0},
        {"crit": ["x-dojang-policy"], "x-dojang-policy": "strict"},
        {"crit": ["kid"]},
        {"crit": []},
        {"crit": "exp", "exp": 0},
    ],
    ids=["extension_exp", "private_extension", "registered_name", "empty_list", "not_a_list"],
)
def test_crit_header_is_refused(verifier: Verifier, key: Key, crit: dict[str, object]) -> None:
    """`crit` (RFC 7515 §4.1.11): a token demanding extension semantics the verifier does not
    implement. Ignoring `crit` silently drops whatever the extension meant to restrict."""
    with pytest.raises(UnsupportedHeader):
        verifier.verify(forge(header(key, **crit), claims(), key))


@pytest.mark.parametrize("form", ["unencoded", "detached", "encoded", "without_crit", "b64_true"])
def test_unencoded_payload_b64_false_is_refused(verifier: Verifier, key: Key, form: str) -> None:
    """RFC 7797 `b64: false` (unencoded payload): the signature covers the raw payload bytes,
    so the same token bytes get a second meaning. Refused in every spelling: raw payload in
    the token, detached payload, base64url payload, without `crit`, and even `b64: true`."""
    raw = b'{"sub":"user-1","scope":"orders:admin"}'
    if form in ("without_crit", "b64_true"):
        token = forge(header(key, b64=form == "b64_true"), claims(), key)
    else:
        head = segment(header(key, b64=False, crit=["b64"]))
        # RFC 7797 §3: JWS Signing Input = ASCII(BASE64URL(header)) || '.' || payload bytes.
        signature = b64(key.sign(head.encode("ascii") + b"." + raw))
        middle = {"unencoded": raw.decode(), "detached": "", "encoded": b64(raw)}[form]
        token = f"{head}.{middle}.{signature}"
    with pytest.raises(UnsupportedHeader):
        verifier.verify(token)


@pytest.mark.parametrize(
    "extra",
    [{"zip": "DEF"}, {"cty": "JWT"}, {"enc": "A256GCM"}],
    ids=["zip", "cty_nested", "enc_jwe"],
)
def test_unsupported_header_parameters(
    verifier: Verifier, key: Key, extra: dict[str, object]
) -> None:
    """Compression (`zip`), nested JWTs (`cty: JWT`) and JWE headers (`enc`) in a JWS."""
    with pytest.raises(UnsupportedHeader):
        verifier.verify(forge(header(key, **extra), claims(), key))


def test_duplicate_header_members(verifier: Verifier, key: Key) -> None:
    """Parser differential: a header with `alg` twice (first one says `none`)."""
    head = f'{{"alg":"none","alg":"{key.alg}","kid":"{key.kid}","typ":"at+jwt"}}'
    with pytest.raises(InvalidToken):
        verifier.verify(forge(head, claims(), key))
    head = f'{{"alg":"{key.alg}","kid":"{key.kid}","kid":"other","typ":"at+jwt"}}'
    with pytest.raises(InvalidToken):
        verifier.verify(forge(head, claims(), key))
