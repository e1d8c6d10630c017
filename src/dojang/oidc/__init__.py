"""dojang as an OpenID Connect provider, still session-first.

Authorization code flow with PKCE (S256, every client), ID tokens (``typ: JWT``), rotating
session-bound refresh tokens, RP-initiated logout and Back-Channel Logout 1.0. The HTTP side
lives in ``dojang.server.routes.oidc``; this package holds the protocol logic and storage.

Names are resolved lazily: the server imports this package while it is being built, and the
grants need the server's OAuth helpers, so eager imports here would form a cycle.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "GRANTS": "dojang.oidc.grants",
    "handle_grant": "dojang.oidc.grants",
    "token_request": "dojang.oidc.grants",
    "drain": "dojang.oidc.logout",
    "on_sessions_ended": "dojang.oidc.logout",
    "run_worker": "dojang.oidc.logout",
    "sweep": "dojang.oidc.logout",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dojang.oidc' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
