"""Strict base64url (RFC 7515 §2, RFC 4648 §5) without padding.

JWS compact serialization requires the URL-safe alphabet with all trailing ``=`` removed
(RFC 7515 §2 "Base64url Encoding"). Lenient decoders that accept padding, the standard alphabet,
whitespace or non-zero trailing bits let one token have many spellings, which breaks any cache,
replay list or log keyed by the token string. We accept exactly one spelling per byte string.

Decoding is split in two so a whole compact token is translated in one pass (``to_standard``)
and its segments decoded afterwards (``decode_standard``); ``b64url_decode`` does both for one
string.
"""

from __future__ import annotations

import binascii

from dojang.errors import MalformedToken

__all__ = ["b64url", "b64url_decode", "b64url_encode", "decode_standard", "to_standard"]

# Map the URL alphabet onto the standard one for binascii, and map every character that is
# legal in standard base64 but not in unpadded base64url ("+", "/", "=") to "!", which the
# strict decoder refuses: one C-level pass validates the alphabet and decodes. "." is left
# alone, so a whole compact token can be translated at once and split afterwards.
_TO_STANDARD = bytes.maketrans(b"-_+/=", b"+/!!!")

# Characters allowed as the last symbol when the final quantum is partial: the unused low bits
# must be zero (RFC 4648 §3.5 "canonical encoding"), otherwise two strings decode to the same
# bytes. Two leftover symbols carry 8 bits (4 unused); three carry 16 bits (2 unused). None of
# them is "-" or "_" (indices 62, 63), so the sets read the same in both alphabets.
_URL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_LAST: tuple[frozenset[int], ...] = (
    frozenset(),
    frozenset(),  # a remainder of one symbol is impossible and refused before this is read
    frozenset(_URL[i] for i in range(0, 64, 16)),
    frozenset(_URL[i] for i in range(0, 64, 4)),
)
_PADDING = (b"", b"", b"==", b"=")
_TO_URL = bytes.maketrans(b"+/", b"-_")
_a2b = binascii.a2b_base64
_b2a = binascii.b2a_base64


def b64url(data: bytes) -> bytes:
    """Encode ``data`` as unpadded base64url bytes."""
    # base64.urlsafe_b64encode without its two Python-level wrappers: every token minted
    # encodes its payload and signature here.
    return _b2a(data, newline=False).translate(_TO_URL).rstrip(b"=")


def b64url_encode(data: bytes) -> str:
    """Encode ``data`` as unpadded base64url text."""
    return b64url(data).decode("ascii")


def to_standard(data: bytes) -> bytes:
    """Translate base64url ``data`` (a segment or a whole token) for ``decode_standard``."""
    return data.translate(_TO_STANDARD)


def decode_standard(segment: bytes, what: str = "segment") -> bytes:
    """Decode a segment already passed through ``to_standard``; MalformedToken if not canonical.

    ``what`` names the part being decoded in the error message (never the data itself).
    """
    rem = len(segment) & 3
    if rem:
        if rem == 1:
            raise MalformedToken(f"{what} has an impossible base64url length")
        if segment[-1] not in _LAST[rem]:
            raise MalformedToken(f"{what} is not canonical unpadded base64url")
        segment += _PADDING[rem]
    try:
        return _a2b(segment, strict_mode=True)
    except binascii.Error:
        raise MalformedToken(f"{what} is not unpadded base64url") from None


def b64url_decode(text: str, what: str = "segment") -> bytes:
    """Decode canonical unpadded base64url ``text``; raise MalformedToken otherwise.

    ``what`` names the part being decoded in the error message (never the data itself).
    """
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        raise MalformedToken(f"{what} is not unpadded base64url") from None
    return decode_standard(to_standard(raw), what)
