"""Token issuance: access tokens (RFC 9068), service tokens, one-time tokens and replay stores."""

from dojang.jose import KeySet
from dojang.tokens.issuer import Issuer, normalize_scope
from dojang.tokens.kinds import ACCESS_TYP, ONE_TIME_TYP, token_kind
from dojang.tokens.onetime import OneTimeTokens
from dojang.tokens.replay import MemoryReplayStore, ReplayStore

__all__ = [
    "ACCESS_TYP",
    "ONE_TIME_TYP",
    "Issuer",
    "KeySet",
    "MemoryReplayStore",
    "OneTimeTokens",
    "ReplayStore",
    "normalize_scope",
    "token_kind",
]
