"""Redeeming one-time tokens: verify strictly, check the purpose, then record ``jti`` once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dojang.clock import SYSTEM_CLOCK, Clock
from dojang.errors import ConfigError, InvalidClaims, TokenAlreadyUsed
from dojang.jose import KeySet
from dojang.tokens.kinds import DEFAULT_MAX_TTL, ONE_TIME_TYP
from dojang.tokens.replay import ReplayStore
from dojang.verify.verifier import Verifier

__all__ = ["OneTimeTokens"]


class OneTimeTokens:
    """Redeem ``ott+jwt`` tokens exactly once.

    ``keys`` is a Verifier configured with ``typ="ott+jwt"``, or the issuer's KeySet / JWKS
    (then ``issuer`` is required and ``audience`` defaults to it, matching
    ``Issuer.one_time_token``). ``store`` remembers redeemed ``jti`` values.
    """

    def __init__(
        self,
        keys: Verifier | KeySet | Mapping[str, object],
        store: ReplayStore,
        *,
        issuer: str | None = None,
        audience: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
        max_lifetime: int = DEFAULT_MAX_TTL["one_time"],
        leeway: float = 5,
    ) -> None:
        if isinstance(keys, Verifier):
            if keys.typ.lower().removeprefix("application/") != ONE_TIME_TYP:
                raise ConfigError(f"OneTimeTokens: the verifier must expect typ {ONE_TIME_TYP!r}")
            self._verifier = keys
        else:
            if not issuer:
                raise ConfigError("OneTimeTokens: issuer is required when given keys")
            self._verifier = Verifier(
                issuer=issuer,
                audience=audience or issuer,
                jwks=keys,
                typ=ONE_TIME_TYP,
                max_lifetime=max_lifetime,
                leeway=leeway,
                clock=clock,
            )
        self._store = store

    async def redeem(self, token: str, *, purpose: str) -> dict[str, Any]:
        """Return the claims the first time ``token`` is redeemed for ``purpose``.

        Raises an InvalidToken subclass if the token is invalid, InvalidClaims if it was issued
        for another purpose (it is not consumed then), TokenAlreadyUsed on any later attempt
        (including re-encoded copies: the record is keyed on ``jti``, not on the token bytes,
        because an ECDSA signature (r, s) can be re-spelled (r, n - s) without the key).
        StoreUnavailable from the store propagates: callers fail closed.
        """
        claims = await self._verifier.averify(token)
        claimed = claims.get("purpose")
        if type(claimed) is not str or claimed != purpose:
            raise InvalidClaims("token was issued for another purpose")
        if not await self._store.redeem(claims["jti"], float(claims["exp"])):
            raise TokenAlreadyUsed("this one-time token was already used")
        return claims
