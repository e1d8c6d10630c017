"""dojang: session-first authentication server and toolkit.

The stable names for business servers and issuers (see DESIGN.md); everything else is
reachable by its package path.
"""

from dojang.errors import (
    AlgorithmNotAllowed,
    BadSignature,
    DojangError,
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
from dojang.jose import Key, KeySet
from dojang.tokens import Issuer
from dojang.verify import DenyList, Verifier

__version__ = "0.1.0"

__all__ = [
    "AlgorithmNotAllowed",
    "BadSignature",
    "DenyList",
    "DojangError",
    "ExpiredToken",
    "InvalidClaims",
    "InvalidToken",
    "Issuer",
    "Key",
    "KeySet",
    "KeysUnavailable",
    "LifetimeTooLong",
    "MalformedToken",
    "NotYetValid",
    "RevokedToken",
    "TokenAlreadyUsed",
    "TokenTooLarge",
    "UnknownKey",
    "UnsupportedHeader",
    "Verifier",
    "WrongSubjectKind",
    "WrongTokenType",
    "__version__",
]
