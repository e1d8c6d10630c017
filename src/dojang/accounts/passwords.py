"""Password hashing with argon2id, always off the event loop, plus the password policy."""

from __future__ import annotations

import asyncio
import logging
import secrets

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from dojang.errors import WeakPassword

PASSWORD_MIN = 8
PASSWORD_MAX = 1024

_security_log = logging.getLogger("dojang.security")


def check_password_policy(password: str) -> None:
    """Raise ``WeakPassword`` unless ``password`` is 8 to 1024 characters long."""
    if not isinstance(password, str):
        raise WeakPassword("the password must be text")
    if len(password) < PASSWORD_MIN:
        raise WeakPassword(f"the password must have at least {PASSWORD_MIN} characters")
    if len(password) > PASSWORD_MAX:
        raise WeakPassword(f"the password must have at most {PASSWORD_MAX} characters")


class PasswordHasher:
    """argon2id hashing and verification, run in a worker thread.

    Argon2 is deliberately slow (tens of milliseconds and 64 MiB by default); running it on
    the event loop would stall every other request. Tests pass cheap parameters. Building
    one costs a single hash (the dummy for unknown users), so build it at start-up.
    """

    def __init__(self, time_cost: int = 3, memory_cost: int = 65536, parallelism: int = 4) -> None:
        self._ph = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            type=argon2.Type.ID,
        )
        # Made here, once, with this hasher's parameters: built lazily, the first login for an
        # unknown user would pay for a hash *and* a verify and stand out by its timing.
        self._dummy_hash = self._ph.hash(secrets.token_urlsafe(16))

    def __repr__(self) -> str:
        ph = self._ph
        return f"PasswordHasher(argon2id t={ph.time_cost} m={ph.memory_cost} p={ph.parallelism})"

    async def hash(self, password: str) -> str:
        """Return an argon2id hash of ``password`` (policy is checked by the caller)."""
        return await asyncio.to_thread(self._ph.hash, password)

    def _verify(self, password_hash: str, password: str) -> tuple[bool, str | None]:
        try:
            self._ph.verify(password_hash, password)
        except VerifyMismatchError:
            return False, None
        except (VerificationError, InvalidHashError):
            # A corrupt or foreign hash fails closed; nobody can log in with it.
            _security_log.warning("unusable password hash in the user store")
            return False, None
        if self._ph.check_needs_rehash(password_hash):
            return True, self._ph.hash(password)
        return True, None

    async def verify(self, password_hash: str, password: str) -> tuple[bool, str | None]:
        """Check ``password`` against ``password_hash``.

        Returns ``(ok, new_hash)``; ``new_hash`` is set when the stored hash used other
        parameters than this hasher, so the caller can store it (transparent rehash).
        """
        return await asyncio.to_thread(self._verify, password_hash, password)

    async def dummy_verify(self, password: str) -> None:
        """Spend what a real verify costs, for users that do not exist.

        Without it, "no such user" answers faster than "wrong password" and usernames can be
        enumerated by timing.
        """
        await asyncio.to_thread(self._verify, self._dummy_hash, password)
