"""Token verification for business servers: ``Verifier``, revocation views, web adapters.

The core (this package minus ``asgi``, ``wsgi`` and ``fastapi``) imports no web framework.
"""

from dojang.errors import (
    AlgorithmNotAllowed,
    BadSignature,
    ExpiredToken,
    InvalidClaims,
    InvalidToken,
    KeysUnavailable,
    LifetimeTooLong,
    MalformedToken,
    NotYetValid,
    RevokedToken,
    TokenAlreadyUsed,
    TokenTooLarge,
    UnknownKey,
    UnsupportedHeader,
    WrongSubjectKind,
    WrongTokenType,
)
from dojang.verify.revocation import DenyList, RevocationView
from dojang.verify.verifier import Verifier

__all__ = [
    "AlgorithmNotAllowed",
    "BadSignature",
    "DenyList",
    "ExpiredToken",
    "InvalidClaims",
    "InvalidToken",
    "KeysUnavailable",
    "LifetimeTooLong",
    "MalformedToken",
    "NotYetValid",
    "RevocationView",
    "RevokedToken",
    "TokenAlreadyUsed",
    "TokenTooLarge",
    "UnknownKey",
    "UnsupportedHeader",
    "Verifier",
    "WrongSubjectKind",
    "WrongTokenType",
]
