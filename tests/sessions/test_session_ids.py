"""Cookie values, sids and CSRF secrets: shape, randomness, canonical form."""

from __future__ import annotations

import base64
import hashlib

from hypothesis import given
from hypothesis import strategies as st

from dojang.sessions.ids import (
    hash_cookie,
    is_well_formed_cookie,
    is_well_formed_sid,
    new_cookie_value,
    new_csrf_secret,
    new_sid,
)


def test_cookie_value_shape() -> None:
    values = {new_cookie_value() for _ in range(200)}
    assert len(values) == 200
    assert all(is_well_formed_cookie(v) for v in values)
    assert all(len(base64.urlsafe_b64decode(v + "=")) == 32 for v in values)


def test_sid_and_csrf_shape() -> None:
    sids = {new_sid() for _ in range(200)}
    assert len(sids) == 200
    assert all(len(s) == 22 and is_well_formed_sid(s) for s in sids)
    assert all(len(new_csrf_secret()) == 43 for _ in range(10))


def test_hash_cookie_is_sha256() -> None:
    v = new_cookie_value()
    assert hash_cookie(v) == hashlib.sha256(v.encode()).digest()
    assert len(hash_cookie(v)) == 32


@given(st.binary(min_size=32, max_size=32))
def test_every_32_byte_secret_is_well_formed(raw: bytes) -> None:
    v = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    assert is_well_formed_cookie(v)
    assert not is_well_formed_sid(v)


@given(st.binary(min_size=16, max_size=16))
def test_every_16_byte_sid_is_well_formed(raw: bytes) -> None:
    assert is_well_formed_sid(base64.urlsafe_b64encode(raw).rstrip(b"=").decode())


@given(st.text(max_size=60))
def test_only_canonical_encodings_pass(value: str) -> None:
    """A value passes exactly when it is the canonical base64url of 32 bytes."""
    try:
        raw = base64.urlsafe_b64decode(value + "=")
        canonical = base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == value
    except ValueError:
        canonical = False
    assert is_well_formed_cookie(value) == (canonical and len(value) == 43)


def test_non_strings_are_not_well_formed() -> None:
    assert not is_well_formed_cookie(None)
    assert not is_well_formed_cookie(new_cookie_value().encode())
    assert not is_well_formed_sid(12)
