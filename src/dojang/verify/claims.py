"""JWT claim policy (RFC 7519 §4.1, RFC 9068 §4, RFC 8725 §3.8-3.10), run after the signature.

Everything here is a pure function of the claims, the configuration and ``now``, so it is
tested without keys. Values are compared by exact type: ``True`` is not a number, a one-element
list is not an audience, ``"1800000000"`` is not a time.
"""

from __future__ import annotations

import math
from typing import Any, Final, Literal

from dojang.errors import (
    ExpiredToken,
    InvalidClaims,
    LifetimeTooLong,
    NotYetValid,
    WrongSubjectKind,
)

__all__ = [
    "MAX_ID_LENGTH",
    "MAX_NUMERIC_DATE",
    "SUBJECT_KINDS",
    "SubjectKind",
    "check_claims",
    "check_subject_kind",
    "numeric_date",
    "required_date",
]

SubjectKind = Literal["user", "service"]
SUBJECT_KINDS: Final = ("user", "service")

# 9999-12-31T23:59:59Z. Anything later is an attempt to mint a token that never expires or to
# overflow a consumer's date type, not a real time.
MAX_NUMERIC_DATE: Final = 253_402_300_799
# Identifiers (sub, jti, sid) longer than this are not ours; bounding them bounds deny lists.
MAX_ID_LENGTH: Final = 255


def numeric_date(claims: dict[str, Any], name: str, *, required: bool) -> float | None:
    """Return claim ``name`` as a NumericDate (RFC 7519 §2) or raise InvalidClaims."""
    value = claims.get(name)
    if value is None:
        if name in claims or required:
            raise InvalidClaims(f"{name} claim is required and must be a number")
        return None
    kind = type(value)
    # type() rather than isinstance(): bool is an int subclass and must not pass as a time.
    if kind is int:
        if not 0 <= value <= MAX_NUMERIC_DATE:
            raise InvalidClaims(f"{name} claim is out of range")
        return float(value)
    if kind is float:
        if not (math.isfinite(value) and 0 <= value <= MAX_NUMERIC_DATE):
            raise InvalidClaims(f"{name} claim is out of range")
        return float(value)
    raise InvalidClaims(f"{name} claim must be a number")


def required_date(claims: dict[str, Any], name: str) -> float:
    """Return required claim ``name`` as a NumericDate or raise InvalidClaims."""
    value = numeric_date(claims, name, required=True)
    if value is None:  # numeric_date already raised; this keeps the type checker honest
        raise InvalidClaims(f"{name} claim is required")
    return value


def _is_identifier(value: object) -> bool:
    return type(value) is str and 0 < len(value) <= MAX_ID_LENGTH


def check_subject_kind(claims: dict[str, Any], kind: SubjectKind | None) -> None:
    """Raise WrongSubjectKind unless the token acts for the ``kind`` of subject required.

    User and service tokens share ``typ: at+jwt`` (RFC 9068), so the claims tell them apart,
    by the same rule as ``dojang.tokens.kinds.token_kind``: a *user* token carries ``sid``, the
    session it was minted from (directly, or by token exchange on the user's behalf); a
    *service* token (``client_credentials``) never does. ``None`` accepts both.
    """
    if kind is None:
        return
    is_user = "sid" in claims
    if kind == "user" and not is_user:
        raise WrongSubjectKind("a user token is required; this is a service token (no sid)")
    if kind == "service" and is_user:
        raise WrongSubjectKind("a service token is required; this token acts for a user (sid)")


def check_claims(
    claims: dict[str, Any],
    *,
    issuer: str,
    audience: str,
    now: float,
    leeway: float,
    max_lifetime: float,
    subject_kind: SubjectKind | None = None,
) -> None:
    """Raise an InvalidClaims subclass unless ``claims`` satisfy the policy.

    ``iss`` must equal ``issuer`` exactly; ``aud`` must be one string equal to ``audience``
    (RFC 9068 §4 lets us insist on a single audience, which removes "which one did you mean"
    confusion); ``sub`` and ``jti`` are required non-empty strings, ``sid`` optional; ``exp``
    and ``iat`` are required, ``nbf`` optional; ``leeway`` widens the time checks once;
    ``exp - iat`` may not exceed ``max_lifetime`` (no leeway: it is not a clock comparison);
    ``subject_kind`` optionally insists on a user or a service token (``check_subject_kind``).
    """
    # Runs on every verified request: whole-number dates (what issuers emit) are checked here,
    # anything else (floats, nulls, errors) through required_date/numeric_date.
    get = claims.get
    iss = get("iss")
    if type(iss) is not str or iss != issuer:
        raise InvalidClaims("iss claim does not match the expected issuer")
    aud = get("aud")
    if type(aud) is not str or aud != audience:
        # RFC 8725 §3.9: a token for another audience must not be replayable here. Arrays are
        # refused even with one element: our issuer never emits them.
        raise InvalidClaims("aud claim must be exactly the expected audience")
    if not _is_identifier(get("sub")):
        raise InvalidClaims("sub claim must be a non-empty string")
    if not _is_identifier(get("jti")):
        raise InvalidClaims("jti claim must be a non-empty string")
    if "sid" in claims and not _is_identifier(claims["sid"]):
        raise InvalidClaims("sid claim must be a non-empty string")
    scope = get("scope")
    if scope is not None and type(scope) is not str:
        raise InvalidClaims("scope claim must be a space-delimited string")

    exp = get("exp")
    if type(exp) is not int or not 0 <= exp <= MAX_NUMERIC_DATE:
        exp = required_date(claims, "exp")  # a float, or the precise error
    iat = get("iat")
    if type(iat) is not int or not 0 <= iat <= MAX_NUMERIC_DATE:
        iat = required_date(claims, "iat")
    nbf = numeric_date(claims, "nbf", required=False) if "nbf" in claims else None
    if exp <= iat:
        raise InvalidClaims("exp claim is not after iat")
    if exp - iat > max_lifetime:
        raise LifetimeTooLong("token lifetime exceeds the maximum")
    if now >= exp + leeway:
        raise ExpiredToken("token has expired")
    if iat > now + leeway:
        raise NotYetValid("iat claim is in the future")
    if nbf is not None and nbf > now + leeway:
        raise NotYetValid("token is not valid yet (nbf)")
    if subject_kind is not None:
        check_subject_kind(claims, subject_kind)
