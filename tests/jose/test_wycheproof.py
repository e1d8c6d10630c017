"""Wycheproof conformance (C2SP/wycheproof): external vectors nobody on this project wrote.

Every vector marked invalid must be rejected. Every vector marked valid must be accepted unless
it is listed below with the reason dojang rejects it on purpose (an algorithm, key type or
encoding outside dojang's allow-list). The lists are checked both ways, so a stale entry fails.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from dojang.errors import InvalidToken
from dojang.jose import ALGORITHMS, Key, KeySet, verify_compact

_HS = "HS* (symmetric HMAC) is never accepted: dojang rejects 'oct' keys (RFC 8725 §3.2)"
_RS384_512 = "RS384/RS512 are not in dojang's algorithm set (RS256 only)"
_PS = "PS256/PS384/PS512 (RSASSA-PSS) are not in dojang's algorithm set"
_ES512 = "ES512 on P-521 is not in dojang's algorithm set (ES256 on P-256 only)"
_B64 = "not canonical unpadded base64url (dojang is strict); also HS256, which is never accepted"

# json_web_signature_test.json: valid vectors rejected on purpose, by tcId.
JWS_REJECTED_ON_PURPOSE: dict[int, str] = {
    1: _HS,
    **dict.fromkeys((264, 265, 266, 267, 268, 269, 270, 271), _RS384_512),
    **dict.fromkeys((272, 273, 274, 275, 287, 288, 320, 321, 322, 323), _PS),
    **dict.fromkeys((325, 326, 327, 328, 346, 350), _PS),
    **dict.fromkeys((347, 351), _ES512),
    **dict.fromkeys((348, 352, 357, 358, 359, 376, 377), _HS),
    **dict.fromkeys((372, 373), _B64),
}

# json_web_key_test.json: valid vectors rejected on purpose, by tcId.
JWK_REJECTED_ON_PURPOSE: dict[int, str] = dict.fromkeys((2, 13, 14, 15), _HS)


def _vectors_dir() -> Path | None:
    candidates = [Path(__file__).resolve().parents[2] / ".." / "shared" / "vectors" / "wycheproof"]
    if os.environ.get("DOJANG_TEST_VECTORS_DIR"):
        candidates.insert(0, Path(os.environ["DOJANG_TEST_VECTORS_DIR"]))
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return None


VECTORS = _vectors_dir()


@pytest.fixture(scope="module")
def vectors() -> Path:
    if VECTORS is None:
        if os.environ.get("CI"):
            pytest.fail("Wycheproof vectors not found (set DOJANG_TEST_VECTORS_DIR or ../shared)")
        pytest.skip(
            "WYCHEPROOF VECTORS NOT FOUND: conformance NOT checked "
            "(expected ../shared/vectors/wycheproof or DOJANG_TEST_VECTORS_DIR)"
        )
    return VECTORS


def _load(directory: Path, name: str) -> dict[str, Any]:
    path = directory / name
    assert path.is_file(), f"missing vector file {path}"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _tests(doc: Mapping[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for group in doc["testGroups"]:
        for test in group["tests"]:
            yield group, test


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _raw_signature_run(doc: Mapping[str, Any], make_jwk: Any) -> tuple[int, list[str]]:
    """Verify every (msg, sig) of a raw signature file through Key.verify."""
    ran, wrong = 0, []
    for group in doc["testGroups"]:
        try:
            key: Key | None = Key.from_jwk(make_jwk(group["publicKey"]))
        except InvalidToken:
            key = None  # then every vector of the group must be invalid
        for test in group["tests"]:
            ran += 1
            accepted = key is not None and key.verify(
                bytes.fromhex(test["sig"]), bytes.fromhex(test["msg"])
            )
            if accepted != (test["result"] == "valid"):
                wrong.append(f"tcId {test['tcId']} ({test['result']}): {test['comment']}")
    return ran, wrong


def test_ed25519_vectors(vectors: Path) -> None:
    """RFC 8032 edge cases: non-canonical S, truncated/extended signatures, bad encodings."""
    doc = _load(vectors, "ed25519_test.json")

    def jwk(public: Mapping[str, str]) -> dict[str, str]:
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "kid": "wycheproof",
            "x": _b64(bytes.fromhex(public["pk"])),
        }

    ran, wrong = _raw_signature_run(doc, jwk)
    print(f"wycheproof ed25519: ran {ran} vectors")
    assert ran == doc["numberOfTests"] > 0
    assert wrong == []


def test_ecdsa_p256_p1363_vectors(vectors: Path) -> None:
    """P1363 (R||S) ES256 edge cases: range checks, r/s = 0, wrong sizes, arithmetic corners."""
    doc = _load(vectors, "ecdsa_secp256r1_sha256_p1363_test.json")

    def jwk(public: Mapping[str, str]) -> dict[str, str]:
        x = int(public["wx"], 16).to_bytes(32, "big")
        y = int(public["wy"], 16).to_bytes(32, "big")
        return {"kty": "EC", "crv": "P-256", "kid": "wycheproof", "x": _b64(x), "y": _b64(y)}

    ran, wrong = _raw_signature_run(doc, jwk)
    print(f"wycheproof ecdsa p256 p1363: ran {ran} vectors")
    assert ran == doc["numberOfTests"] > 0
    assert wrong == []


def _jose_run(doc: Mapping[str, Any], on_purpose: Mapping[int, str]) -> tuple[int, int, list[str]]:
    ran, accepted_count, wrong = 0, 0, []
    rejected_valid: set[int] = set()
    for group, test in _tests(doc):
        ran += 1
        material: Any = group.get("public") or group.get("private")
        try:
            key: Any = KeySet.from_jwks(material) if "keys" in material else material
            verify_compact(test["jws"], key, ALGORITHMS)
            accepted = True
        except InvalidToken:
            accepted = False
        tc, valid = test["tcId"], test["result"] == "valid"
        if accepted:
            accepted_count += 1
            if not valid:
                wrong.append(f"tcId {tc}: invalid vector accepted ({test['comment']})")
            elif tc in on_purpose:
                wrong.append(f"tcId {tc}: listed as rejected on purpose but accepted")
        elif valid:
            rejected_valid.add(tc)
            if tc not in on_purpose:
                wrong.append(f"tcId {tc}: valid vector rejected ({test['comment']})")
    stale = set(on_purpose) - rejected_valid
    wrong.extend(f"tcId {tc}: stale REJECTED_ON_PURPOSE entry" for tc in sorted(stale))
    return ran, accepted_count, wrong


def test_json_web_signature_vectors(vectors: Path) -> None:
    """JWS compact vectors: modified parts, alg none, embedded jwk, HS confusion, padding."""
    doc = _load(vectors, "json_web_signature_test.json")
    ran, accepted, wrong = _jose_run(doc, JWS_REJECTED_ON_PURPOSE)
    print(
        f"wycheproof jws: ran {ran}, accepted {accepted}, "
        f"rejected on purpose {len(JWS_REJECTED_ON_PURPOSE)}"
    )
    assert ran == doc["numberOfTests"] > 0
    assert accepted > 0
    assert wrong == []


def test_json_web_key_vectors(vectors: Path) -> None:
    """JWK/JWKS vectors: mixed and duplicate kids, weak/ROCA RSA, e = 1, wrong curve/use/kty."""
    doc = _load(vectors, "json_web_key_test.json")
    ran, accepted, wrong = _jose_run(doc, JWK_REJECTED_ON_PURPOSE)
    print(
        f"wycheproof jwk: ran {ran}, accepted {accepted}, "
        f"rejected on purpose {len(JWK_REJECTED_ON_PURPOSE)}"
    )
    assert ran == sum(len(g["tests"]) for g in doc["testGroups"]) > 0
    assert accepted > 0
    assert wrong == []
