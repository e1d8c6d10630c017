"""Strict base64url: one spelling per byte string (RFC 7515 §2, RFC 4648 §3.5)."""

from __future__ import annotations

import pytest

from dojang.errors import MalformedToken
from dojang.jose._b64 import b64url_decode, b64url_encode


@pytest.mark.parametrize("data", [b"", b"f", b"fo", b"foo", b"\xfb\xff\xfe", bytes(range(256))])
def test_round_trip(data: bytes) -> None:
    text = b64url_encode(data)
    assert "=" not in text and "+" not in text and "/" not in text
    assert b64url_decode(text) == data


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("Zm8=", "padding"),
        ("Zg==", "padding"),
        ("+/8", "standard alphabet"),
        ("ab+c", "plus"),
        ("ab/c", "slash"),
        ("ab c", "space"),
        ("abc\n", "newline"),
        ("ab\tc", "tab"),
        ("abcde", "length 4k+1"),
        ("Zh", "non-zero trailing bits (2 symbols)"),
        ("Zm9", "non-zero trailing bits (3 symbols)"),
        ("Zm\u00e9", "non-ASCII"),
        ("ab.c", "dot"),
        ("=abc", "leading padding"),
    ],
)
def test_rejects_non_canonical(text: str, why: str) -> None:
    with pytest.raises(MalformedToken):
        b64url_decode(text)


def test_error_names_the_part_not_the_data() -> None:
    with pytest.raises(MalformedToken) as info:
        b64url_decode("s3cr3t+value", "signature")
    assert "signature" in str(info.value)
    assert "s3cr3t" not in str(info.value)
