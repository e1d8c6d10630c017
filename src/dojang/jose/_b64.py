"""Strict base64url (RFC 7515 §2, RFC 4648 §5) without padding.

JWS compact serialization requires the URL-safe alphabet with all trailing ``=`` removed
(RFC 7515 §2 "Base64url Encoding"). Lenient decoders that accept padding, the standard alphabet,
whitespace or non-zero trailing bits let one token have many spellings, which breaks any cache,
replay list or log keyed by the token string. We accept exactly one spelling per byte string.
"""

from __future__ import annotations

import base64
import binascii

from dojang.errors import MalformedToken

__all__ = ["b64url_decode", "b64url_encode"]

# Map the URL alphabet onto the standard one for binascii, and map every character that is
# legal in standard base64 but not in unpadded base64url ("+", "/", "=") to "!", which the
# strict decoder refuses: one C-level pass validates the alphabet and decodes.
_TO_STANDARD = bytes.maketrans(b"-_+/=", b"+/!!!")

# Characters allowed as the last symbol when the final quantum is partial: the unused low bits
# must be zero (RFC 4648 §3.5 "canonical encoding"), otherwise two strings decode to the same
# bytes. Two leftover symbols carry 8 bits (4 unused); three carry 16 bits (2 unused).
_URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_LAST_OF_2 = frozenset(_URL[i] for i in range(0, 64, 16))
_LAST_OF_3 = frozenset(_URL[i] for i in range(0, 64, 4))
_PADDING = (b"", b"", b"==", b"=")


def b64url_encode(data: bytes) -> str:
    """Encode ``data`` as unpadded base64url text."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, what: str = "segment") -> bytes:
    """Decode canonical unpadded base64url ``text``; raise MalformedToken otherwise.

    ``what`` names the part being decoded in the error message (never the data itself).
    """
    rem = len(text) & 3
    if rem:
        if rem == 1:
            raise MalformedToken(f"{what} has an impossible base64url length")
        if text[-1] not in (_LAST_OF_2 if rem == 2 else _LAST_OF_3):
            raise MalformedToken(f"{what} is not canonical unpadded base64url")
    try:
        raw = text.encode("ascii").translate(_TO_STANDARD) + _PADDING[rem]
        return binascii.a2b_base64(raw, strict_mode=True)
    except (UnicodeEncodeError, binascii.Error):
        raise MalformedToken(f"{what} is not unpadded base64url") from None
