"""The authorization request (RFC 6749 §4.1.1, OIDC Core §3.1.2.1), parsed and checked.

Order matters (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6): until the client and its exact
redirect URI are established, every problem is shown on dojang's own error page and the
browser is *never* sent anywhere; after that, errors go back to the client's redirect URI.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final
from urllib.parse import urlencode, urlsplit, urlunsplit

from dojang.accounts.clients import OIDCClient
from dojang.oidc import pkce

SUPPORTED_SCOPES: Final = frozenset({"openid", "profile"})
SUPPORTED_PROMPTS: Final = frozenset({"none", "login", "consent"})
MAX_QUERY: Final = 4096
# Per-parameter ceilings: generous for real clients, small enough that the whole request
# fits the login page's ``next`` (2 KiB) after percent-encoding.
LIMITS: Final = {
    "client_id": 64,
    "redirect_uri": 512,
    "response_type": 32,
    "response_mode": 32,
    "scope": 256,
    "state": 256,
    "nonce": 128,
    "code_challenge": 43,
    "code_challenge_method": 8,
    "prompt": 64,
    "max_age": 9,
    "login_hint": 128,
    "ui_locales": 64,
}
_PRINTABLE: Final = re.compile(r"^[\x20-\x7e]*$")

if TYPE_CHECKING:
    from dojang.server.services import Services


class AuthorizeError(Exception):
    """An authorization error: ``code`` is the RFC 6749 §4.1.2.1 / OIDC §3.1.2.6 code.

    ``redirect_uri`` is set only once the client and redirect URI were verified; without it
    the error is rendered on dojang's own page.
    """

    def __init__(
        self,
        code: str,
        description: str,
        *,
        redirect_uri: str | None = None,
        state: str | None = None,
    ) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.redirect_uri = redirect_uri
        self.state = state


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """A checked request: everything needed to issue a code (or ask for consent)."""

    client: OIDCClient
    redirect_uri: str
    scope: tuple[str, ...]
    state: str | None
    nonce: str | None
    code_challenge: str
    prompt: frozenset[str]
    max_age: int | None

    def to_params(self, *, drop_prompt: bool = False) -> dict[str, str]:
        """The request as query/form parameters (for ``next`` and the consent form)."""
        out = {
            "client_id": self.client.client_id,
            "redirect_uri": self.redirect_uri,
            "response_type": "code",
            "scope": " ".join(self.scope),
            "code_challenge": self.code_challenge,
            "code_challenge_method": "S256",
        }
        if self.state is not None:
            out["state"] = self.state
        if self.nonce is not None:
            out["nonce"] = self.nonce
        if not drop_prompt:
            if self.prompt:
                out["prompt"] = " ".join(sorted(self.prompt))
            if self.max_age is not None:
                out["max_age"] = str(self.max_age)
        return out

    def error(self, code: str, description: str) -> AuthorizeError:
        """An error that goes back to this (verified) redirect URI."""
        return AuthorizeError(code, description, redirect_uri=self.redirect_uri, state=self.state)


def redirect_with(uri: str, params: dict[str, str]) -> str:
    """Add ``params`` to ``uri``'s query (RFC 6749 §4.1.2: keep the registered query)."""
    parts = urlsplit(uri)
    query = parts.query + ("&" if parts.query else "") + urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def _single(items: Sequence[tuple[str, str]]) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in items:
        if key in params:
            # RFC 6749 §3.1: parameters MUST NOT be included more than once.
            raise AuthorizeError("invalid_request", f"parameter {key[:40]!r} given more than once")
        params[key] = value
    for key, limit in LIMITS.items():
        given = params.get(key)
        if given is not None and (len(given) > limit or not _PRINTABLE.match(given)):
            raise AuthorizeError("invalid_request", f"{key} is too long or not printable ASCII")
    return params


async def parse(svc: Services, items: Sequence[tuple[str, str]]) -> AuthorizationRequest:
    """Check an authorization request; raise ``AuthorizeError`` with the right destination."""
    params = _single(items)
    client_id = params.get("client_id")
    if not client_id:
        raise AuthorizeError("invalid_request", "client_id is required")
    client = await svc.clients.get_oidc_client(client_id)
    if client is None:
        raise AuthorizeError("invalid_client", "unknown client_id")
    redirect_uri = params.get("redirect_uri")
    # Exact string comparison against the registered list (RFC 6749 §3.1.2.3, OAuth 2.1
    # §2.3.1): no prefix, no normalisation, and redirect_uri is always required.
    if not redirect_uri or redirect_uri not in client.redirect_uris:
        raise AuthorizeError("invalid_request", "redirect_uri is missing or not registered")
    state = params.get("state")

    def fail(code: str, description: str) -> AuthorizeError:
        return AuthorizeError(code, description, redirect_uri=redirect_uri, state=state)

    if "request" in params:
        raise fail("request_not_supported", "request objects are not supported")
    if "request_uri" in params:
        raise fail("request_uri_not_supported", "request_uri is not supported")
    response_type = params.get("response_type")
    if response_type != "code":
        # Only the code flow: no implicit or hybrid tokens in URLs (OAuth 2.1 §10.1).
        raise fail("unsupported_response_type", "response_type must be code")
    if params.get("response_mode", "query") != "query":
        raise fail("invalid_request", "response_mode must be query")
    requested = params.get("scope", "").split()
    if "openid" not in requested:
        raise fail("invalid_scope", "scope must include openid")
    # OIDC Core §3.1.2.1: scope values that are not understood are ignored.
    scope = tuple(s for s in dict.fromkeys(requested) if s in SUPPORTED_SCOPES)
    challenge = params.get("code_challenge")
    if not challenge:
        raise fail("invalid_request", "code_challenge is required (PKCE, RFC 7636)")
    if params.get("code_challenge_method") != "S256":
        raise fail("invalid_request", "code_challenge_method must be S256")
    if not pkce.is_valid_challenge(challenge):
        raise fail("invalid_request", "code_challenge is malformed")
    prompt = frozenset(params.get("prompt", "").split())
    if not prompt <= SUPPORTED_PROMPTS:
        raise fail("invalid_request", "unsupported prompt value")
    if "none" in prompt and len(prompt) > 1:
        raise fail("invalid_request", "prompt=none cannot be combined")  # OIDC Core §3.1.2.1
    max_age: int | None = None
    if "max_age" in params:
        if not params["max_age"].isdigit():
            raise fail("invalid_request", "max_age must be a non-negative integer")
        max_age = int(params["max_age"])
    return AuthorizationRequest(
        client=client,
        redirect_uri=redirect_uri,
        scope=scope,
        state=state,
        nonce=params.get("nonce"),
        code_challenge=challenge,
        prompt=prompt,
        max_age=max_age,
    )
