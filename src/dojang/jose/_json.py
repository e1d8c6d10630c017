"""Strict JSON object parsing for JOSE headers, JWT claims and key files.

RFC 7515 §5.2 and RFC 7519 §7.2 require rejecting (or deterministically handling) duplicate
member names; different parsers keep the first or the last duplicate, which lets an attacker
show one claim set to a gateway and another to the service behind it. We reject duplicates at
every depth, reject NaN/Infinity (not JSON per RFC 8259 §6), reject lone surrogates (not
Unicode, RFC 8259 §8.2) and bound the nesting depth so hostile input cannot exhaust the stack.
"""

from __future__ import annotations

import json
import math
import re
from json.scanner import make_scanner
from typing import Any, NoReturn, cast

from dojang.errors import MalformedToken

__all__ = ["MAX_DEPTH", "parse_json_object"]

MAX_DEPTH = 16

_SURROGATE = re.compile("[\ud800-\udfff]")


class _Reject(ValueError):
    """Raised from inside the json hooks; translated to MalformedToken at the boundary."""


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _Reject("duplicate member name")
    return obj


def _reject_constant(name: str) -> NoReturn:
    raise _Reject(f"{name} is not JSON")


def _parse_float(text: str) -> float:
    value = float(text)
    # "1e999" parses to inf in Python: the same non-JSON value as Infinity, spelled differently.
    if not math.isfinite(value):
        raise _Reject("number out of range")
    return value


_DECODER = json.JSONDecoder(
    object_pairs_hook=_pairs_hook, parse_constant=_reject_constant, parse_float=_parse_float
)
# The decoder's grammar with each object returned as its list of (name, value) pairs, built in
# C without calling _pairs_hook: parse_json_object uses it for flat documents, where the only
# object is the top-level one and the duplicate check can be done once, inline. (typeshed types
# make_scanner's argument as a scanner context; a JSONDecoder is what it reads the hooks from.)
_SCAN_PAIRS = make_scanner(
    cast(
        Any,
        json.JSONDecoder(
            object_pairs_hook=list, parse_constant=_reject_constant, parse_float=_parse_float
        ),
    )
)
# Bytes that make a document not flat (nesting, or escapes that could spell a surrogate).
_NOT_FLAT = b"{[\\"


def _walk(root: object, check_depth: bool, check_strings: bool) -> None:
    """Check depth and surrogates iteratively (no recursion on hostile shapes)."""
    stack: list[tuple[object, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if check_depth and depth > MAX_DEPTH:
            raise _Reject(f"nesting deeper than {MAX_DEPTH}")
        if isinstance(node, dict):
            for key, value in node.items():
                if check_strings and _SURROGATE.search(key):
                    raise _Reject("lone surrogate in a member name")
                stack.append((value, depth + 1))
        elif isinstance(node, list):
            stack.extend((value, depth + 1) for value in node)
        elif check_strings and isinstance(node, str) and _SURROGATE.search(node):
            raise _Reject("lone surrogate in a string")


def parse_json_object(data: bytes, what: str = "JSON") -> dict[str, object]:
    """Parse ``data`` as a strict UTF-8 JSON object or raise MalformedToken.

    Rejects: invalid UTF-8 (including encoded surrogates and a BOM), anything but an object at
    the top level, duplicate member names at any depth, NaN/Infinity and out-of-range floats,
    lone ``\\uD800``-style surrogate escapes, and nesting deeper than ``MAX_DEPTH``.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedToken(f"{what} is not valid UTF-8") from None
    # Fast path for what issuers emit: a compact object whose only "{" is its first byte, with
    # no "[" and no "\\" anywhere, so it has depth 1 and no escape (hence no surrogate). Any
    # failure here (bad JSON, NaN, trailing data) falls through to the full path below, which
    # gives the precise error.
    if data.startswith(b"{") and len(data.translate(None, _NOT_FLAT)) == len(data) - 1:
        try:
            pairs, end = _SCAN_PAIRS(text, 0)
        except (StopIteration, ValueError):
            end = -1
        if end == len(text):
            obj = dict(pairs)
            if len(obj) != len(pairs):
                raise MalformedToken(f"{what}: duplicate member name")
            return obj
    try:
        obj = _DECODER.decode(text)
        # Cheap pre-checks keep the common case free of a Python-level walk: depth can only
        # exceed MAX_DEPTH with more than MAX_DEPTH brackets, and a lone surrogate can only
        # appear through a \u escape (strict UTF-8 decoding already refused encoded ones).
        deep = data.count(b"{") + data.count(b"[") > MAX_DEPTH
        escaped = b"\\u" in data
        if deep or escaped:
            _walk(obj, deep, escaped)
    except _Reject as exc:
        raise MalformedToken(f"{what}: {exc}") from None
    except RecursionError:
        raise MalformedToken(f"{what}: nesting too deep") from None
    except ValueError:  # JSONDecodeError, and int() refusing > 4300 digits
        raise MalformedToken(f"{what} is not valid JSON") from None
    if not isinstance(obj, dict):
        raise MalformedToken(f"{what} is not a JSON object")
    return obj
