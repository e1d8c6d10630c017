"""Account errors not (yet) in :mod:`dojang.errors`."""

from __future__ import annotations

from dojang.errors import AuthError


class InvalidUsername(AuthError):
    """The username is empty, too long, or uses characters outside [a-z0-9._@-]."""

    code = "invalid_username"
