"""The token kinds dojang issues, their ``typ`` headers and their lifetime limits.

Kinds are told apart by the JOSE ``typ`` header first (RFC 8725 §3.11 "explicit typing"), so a
verifier configured for one kind rejects every other kind before it looks at a claim:

* ``at+jwt`` (RFC 9068 §2.1) — access tokens, both *user* tokens (carry ``sid``, the session
  that minted them) and *service* tokens from ``client_credentials`` (no ``sid``,
  ``sub == client_id`` as RFC 9068 §2.2 recommends). Both are OAuth access tokens meant for the
  same resource servers, so they share the ``typ``; within it the presence of ``sid`` decides
  (``token_kind``), and the Issuer refuses to mint an ambiguous user token.
* ``ott+jwt`` — one-time tokens (email links, password reset, download grants). Never accepted
  where an access token is expected and vice versa.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

__all__ = [
    "ACCESS_TYP",
    "DEFAULT_MAX_TTL",
    "HARD_MAX_TTL",
    "ONE_TIME_TYP",
    "Kind",
    "token_kind",
]

ACCESS_TYP: Final = "at+jwt"
ONE_TIME_TYP: Final = "ott+jwt"

Kind = Literal["access", "service", "one_time"]

# Defaults an Issuer starts from; a deployment may lower them, or raise them up to HARD_MAX_TTL.
DEFAULT_MAX_TTL: Final[Mapping[Kind, int]] = {"access": 900, "service": 900, "one_time": 86_400}
# Ceilings no configuration can exceed: an access token that outlives 15 minutes undermines
# the push-revocation design; a one-time link older than a week is a liability in a mailbox.
HARD_MAX_TTL: Final[Mapping[Kind, int]] = {"access": 900, "service": 900, "one_time": 604_800}


def token_kind(claims: Mapping[str, Any]) -> Literal["user", "service"]:
    """Tell a user access token from a service access token (both ``typ: at+jwt``).

    User tokens always carry ``sid``; service tokens never do and name the client as ``sub``.
    """
    return "user" if "sid" in claims else "service"
