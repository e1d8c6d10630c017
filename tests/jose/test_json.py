"""Strict JSON objects: duplicates, depth, NaN/Infinity, surrogates, UTF-8 (RFC 8259)."""

from __future__ import annotations

import pytest

from dojang.errors import MalformedToken
from dojang.jose import parse_json_object
from dojang.jose._json import MAX_DEPTH


def test_parses_object() -> None:
    data = b'{"a": 1, "b": [1, 2.5, {"c": null}], "d": "\\ud83d\\ude00 \xc3\xa9", "e": true}'
    assert parse_json_object(data) == {
        "a": 1,
        "b": [1, 2.5, {"c": None}],
        "d": "\U0001f600 \u00e9",
        "e": True,
    }


def _nested(depth: int) -> bytes:
    """An object nested to exactly ``depth`` levels (the top object counts as 1)."""
    return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


def test_depth_limit_is_inclusive() -> None:
    assert parse_json_object(_nested(MAX_DEPTH))
    with pytest.raises(MalformedToken, match="nesting"):
        parse_json_object(_nested(MAX_DEPTH + 1))


def test_deep_arrays_rejected() -> None:
    data = b'{"a":' + b"[" * (MAX_DEPTH) + b"]" * (MAX_DEPTH) + b"}"
    with pytest.raises(MalformedToken, match="nesting"):
        parse_json_object(data)


def test_pathological_depth_does_not_crash() -> None:
    """Stack exhaustion (a RecursionError escaping) would be a 500, not a 401."""
    with pytest.raises(MalformedToken):
        parse_json_object(b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}")


@pytest.mark.parametrize(
    "data",
    [
        b'{"a":1,"a":2}',
        b'{"a":{"b":1,"b":1}}',
        b'{"a":[{"x":1},{"y":1,"y":2}]}',
        b'{"a":1,"\\u0061":2}',
    ],
)
def test_duplicate_names_rejected_at_any_depth(data: bytes) -> None:
    with pytest.raises(MalformedToken, match="duplicate"):
        parse_json_object(data)


@pytest.mark.parametrize(
    "data", [b'{"a":NaN}', b'{"a":Infinity}', b'{"a":-Infinity}', b'{"a":1e999}', b'{"a":-1e400}']
)
def test_non_finite_numbers_rejected(data: bytes) -> None:
    with pytest.raises(MalformedToken):
        parse_json_object(data)


@pytest.mark.parametrize(
    "data",
    [b'{"a":"\\ud800"}', b'{"\\udfff":1}', b'{"a":["x\\udc00y"]}', b'{"a":"\\ude00\\ud83d"}'],
)
def test_lone_surrogates_rejected(data: bytes) -> None:
    with pytest.raises(MalformedToken, match="surrogate"):
        parse_json_object(data)


@pytest.mark.parametrize(
    "data",
    [
        b'{"a":"\xff"}',  # not UTF-8
        b'{"a":"\xed\xa0\x80"}',  # UTF-8-encoded surrogate (CESU-8)
        b'{"a":"\xc0\xaf"}',  # overlong encoding
        b'\xef\xbb\xbf{"a":1}',  # byte order mark
        b'{"a":1',  # truncated
        b'{"a":1} x',  # trailing garbage
        b"{'a':1}",  # not JSON
        b'{"a":"\x01"}',  # raw control character
        b'{"a":1' + b"1" * 5000 + b"}",  # integer longer than Python's digit limit
        b"",
    ],
)
def test_invalid_json_rejected(data: bytes) -> None:
    with pytest.raises(MalformedToken):
        parse_json_object(data)


@pytest.mark.parametrize("data", [b"[]", b'"a"', b"1", b"null", b"true"])
def test_non_objects_rejected(data: bytes) -> None:
    with pytest.raises(MalformedToken, match="not a JSON object"):
        parse_json_object(data)
