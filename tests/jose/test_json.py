"""Strict JSON objects: duplicates, depth, NaN/Infinity, surrogates, UTF-8 (RFC 8259)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# --- the flat fast path answers exactly as the full parser --------------------------------


class _Refused(Exception):
    pass


def _reference(data: bytes) -> dict[str, object]:
    """An independent strict parser: json.loads plus the rules parse_json_object documents."""

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        if len({name for name, _ in items}) != len(items):
            raise _Refused("duplicate")
        return dict(items)

    def constant(name: str) -> object:
        raise _Refused(name)

    def finite(text: str) -> float:
        value = float(text)
        if value in (float("inf"), float("-inf")):
            raise _Refused("range")
        return value

    def walk(node: object, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise _Refused("depth")
        if isinstance(node, dict):
            for name, value in node.items():
                walk(name, depth)
                walk(value, depth + 1)
        elif isinstance(node, list):
            for value in node:
                walk(value, depth + 1)
        elif isinstance(node, str) and any(0xD800 <= ord(c) <= 0xDFFF for c in node):
            raise _Refused("surrogate")

    try:
        obj = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=pairs,
            parse_constant=constant,
            parse_float=finite,
        )
        walk(obj, 1)
    except (ValueError, RecursionError, _Refused) as exc:
        raise _Refused(str(exc)) from None
    if not isinstance(obj, dict):
        raise _Refused("not an object")
    return obj


# Raw JSON spellings of member names; some spell the same name two ways.
_NAMES = st.sampled_from(['"iss"', '"exp"', '"a"', '"\\u0061"', '"é"', '"\\u00e9"', '"[{"'])
_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8)
_VALUES = st.one_of(
    _TEXT.map(json.dumps),  # escaped: \uXXXX for anything non-ASCII
    _TEXT.map(lambda t: json.dumps(t, ensure_ascii=False)),
    st.integers(min_value=-(2**64), max_value=2**64).map(str),
    st.sampled_from(
        [
            *("1.5", "1e999", "NaN", "-0", "true", "null"),
            *("[1]", '{"x":1}', '{"x":1,"x":2}'),
            *('"\\ud800"', '"\\ud83d\\ude00"', '"a,b:c"'),
        ]
    ),
)


@st.composite
def _flat_documents(draw: st.DrawFn) -> bytes:
    """Mostly flat objects: repeated names, raw and escaped text, odd numbers, whitespace."""
    members = draw(st.lists(st.tuples(_NAMES, _VALUES), max_size=8))
    colon = st.sampled_from([":", " :", ": "])
    body = ",".join(f"{name}{draw(colon)}{value}" for name, value in members)
    before, after = draw(st.sampled_from(["", " ", "\n"])), draw(st.sampled_from(["", " ", "x"]))
    return f"{before}{{{body}}}{after}".encode()


@settings(max_examples=500, deadline=None)
@given(_flat_documents())
def test_parse_agrees_with_an_independent_strict_parser(data: bytes) -> None:
    """Fast path (flat, escape-free, compact) or full path: the same object or the refusal."""
    try:
        expected = _reference(data)
    except _Refused:
        with pytest.raises(MalformedToken):
            parse_json_object(data)
        return
    assert parse_json_object(data) == expected


@pytest.mark.parametrize(
    "data",
    [
        b'{"exp":1,"exp":2}',  # the fast path's own duplicate check
        b'{"a":"x","a":"x"}',
        b'{"a":1,"b":2,"a":3}',
    ],
)
def test_flat_duplicates_are_refused(data: bytes) -> None:
    with pytest.raises(MalformedToken, match="duplicate"):
        parse_json_object(data)
