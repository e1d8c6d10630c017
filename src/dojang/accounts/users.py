"""Users: storage (:class:`UserRepository`) and the account service (:class:`Accounts`)."""

from __future__ import annotations

import contextlib
import re
import secrets
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row, exc, insert, select, update

from dojang.accounts._storage import begin
from dojang.accounts.errors import InvalidUsername
from dojang.accounts.passwords import PASSWORD_MAX, PasswordHasher, check_password_policy
from dojang.accounts.throttle import LoginThrottle, Throttle
from dojang.clock import SYSTEM_CLOCK, Clock
from dojang.errors import InvalidCredentials, UserExists, UserNotFound
from dojang.storage.accounts_tables import users_table as t
from dojang.storage.db import Database

USERNAME_MAX = 64
_USERNAME = re.compile(r"[a-z0-9._@-]{1,64}")

UserCallback = Callable[[str], Awaitable[None]]
"""Called with a user id around the change that triggers it (see ``Accounts``)."""


def normalize_username(name: str) -> str:
    """Return the canonical form of a username: NFKC, case-folded.

    Raises ``InvalidUsername`` unless the result is 1 to 64 characters of ``[a-z0-9._@-]``, so
    look-alike and differently-cased spellings can never become two accounts.
    """
    if not isinstance(name, str):
        raise InvalidUsername("the username must be text")
    normalized = unicodedata.normalize("NFKC", name).casefold()
    if not _USERNAME.fullmatch(normalized):
        raise InvalidUsername(
            f"usernames are 1 to {USERNAME_MAX} characters of a-z, 0-9, '.', '_', '@', '-'"
        )
    return normalized


@dataclass(frozen=True, slots=True)
class User:
    """A user as the rest of dojang sees it (the password hash never leaves this module)."""

    id: str
    username: str
    disabled: bool
    created_at: float
    password_changed_at: float


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A stored user with its password hash, for :class:`Accounts` only."""

    user: User
    password_hash: str = field(repr=False)


_COLUMNS = (
    t.c.id,
    t.c.username,
    t.c.disabled,
    t.c.created_at,
    t.c.password_changed_at,
    t.c.password_hash,
)


def _from_row(row: Row[*tuple[Any, ...]]) -> UserRecord:
    user = User(
        id=row.id,
        username=row.username,
        disabled=bool(row.disabled),
        created_at=row.created_at,
        password_changed_at=row.password_changed_at,
    )
    return UserRecord(user, row.password_hash)


class UserRepository:
    """Reads and writes the ``users`` table; no policy."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def _one(self, where: Any) -> UserRecord | None:
        async with begin(self._db) as conn:
            row = (await conn.execute(select(*_COLUMNS).where(where))).first()
        return None if row is None else _from_row(row)

    async def by_id(self, user_id: str) -> UserRecord | None:
        """Return the user with ``user_id`` and its hash, or ``None``."""
        return await self._one(t.c.id == user_id)

    async def by_username(self, normalized: str) -> UserRecord | None:
        """Return the user with the (normalised) ``username`` and its hash, or ``None``."""
        return await self._one(t.c.username == normalized)

    async def all(self) -> list[User]:
        """Return every user, ordered by username."""
        async with begin(self._db) as conn:
            rows = (await conn.execute(select(*_COLUMNS).order_by(t.c.username))).all()
        return [_from_row(r).user for r in rows]

    async def insert(self, user: User, password_hash: str) -> None:
        """Insert a user; ``UserExists`` if the username is taken."""
        values = {
            "id": user.id,
            "username": user.username,
            "disabled": user.disabled,
            "created_at": user.created_at,
            "password_changed_at": user.password_changed_at,
            "password_hash": password_hash,
        }
        try:
            async with begin(self._db) as conn:
                await conn.execute(insert(t).values(values))
        except exc.IntegrityError as e:
            raise UserExists(f"the username {user.username!r} is taken") from e

    async def update(
        self, normalized: str, *, only_if_hash: str | None = None, **values: Any
    ) -> User:
        """Update columns of a user; ``UserNotFound`` if there is none.

        ``only_if_hash`` makes the update conditional on the stored hash (a transparent
        rehash must not overwrite a password changed meanwhile).
        """
        stmt = update(t).where(t.c.username == normalized).values(values).returning(*_COLUMNS)
        if only_if_hash is not None:
            stmt = stmt.where(t.c.password_hash == only_if_hash)
        async with begin(self._db) as conn:
            row = (await conn.execute(stmt)).first()
        if row is None:
            raise UserNotFound()
        return _from_row(row).user


class Accounts:
    """Creates users, manages passwords and authenticates logins.

    Ending sessions is wired by the caller through two hooks: ``on_password_change(user_id)``
    after :meth:`set_password` has committed, and ``on_disable(user_id)`` both before and
    after :meth:`disable` commits (see there why). The server passes
    ``SessionManager.revoke_all`` for both; a user who changes their own password gets a fresh
    session afterwards, so "every other session" ends and the current cookie is replaced.
    """

    def __init__(
        self,
        db: Database,
        *,
        hasher: PasswordHasher | None = None,
        throttle: Throttle | None = None,
        clock: Clock = SYSTEM_CLOCK,
        on_password_change: UserCallback | None = None,
        on_disable: UserCallback | None = None,
    ) -> None:
        self.users = UserRepository(db)
        self.hasher = hasher or PasswordHasher()
        self.throttle = throttle or LoginThrottle(db, clock=clock)
        self._clock = clock
        self._on_password_change = on_password_change
        self._on_disable = on_disable

    def __repr__(self) -> str:
        return f"Accounts({self.hasher!r}, {self.throttle!r})"

    async def create_user(self, username: str, password: str) -> User:
        """Create a user; ``InvalidUsername``, ``WeakPassword`` or ``UserExists`` otherwise."""
        name = normalize_username(username)
        check_password_policy(password)
        # Cheap early answer before the expensive hash; the unique constraint decides races.
        if await self.users.by_username(name) is not None:
            raise UserExists(f"the username {name!r} is taken")
        password_hash = await self.hasher.hash(password)
        now = self._clock.now()
        user = User(
            id=secrets.token_urlsafe(16),
            username=name,
            disabled=False,
            created_at=now,
            password_changed_at=now,
        )
        await self.users.insert(user, password_hash)
        return user

    async def get(self, user_id: str) -> User | None:
        """Return the user with ``user_id``, or ``None``."""
        found = await self.users.by_id(user_id)
        return None if found is None else found.user

    async def get_by_username(self, name: str) -> User | None:
        """Return the user called ``name`` (any spelling that normalises to it), or ``None``."""
        try:
            normalized = normalize_username(name)
        except InvalidUsername:
            return None
        found = await self.users.by_username(normalized)
        return None if found is None else found.user

    async def list_users(self) -> list[User]:
        """Return every user, ordered by username."""
        return await self.users.all()

    async def set_password(self, username: str, password: str) -> User:
        """Set a new password; ``on_password_change`` runs before and after it is committed.

        The same order as :meth:`disable`, for the same reason: the sessions that knew the old
        password are ended before the new hash is committed, so a failure after the commit
        cannot leave them alive beside a changed password (a failure before it changes
        nothing but those sessions; running it again finishes the job). The second call ends
        a session a login with the old password created in between. ``WeakPassword`` or
        ``UserNotFound`` otherwise.
        """
        check_password_policy(password)
        name = self._existing_name(username)
        found = await self.users.by_username(name)
        if found is None:
            raise UserNotFound()
        password_hash = await self.hasher.hash(password)
        if self._on_password_change is not None:
            await self._on_password_change(found.user.id)
        user = await self.users.update(
            name, password_hash=password_hash, password_changed_at=self._clock.now()
        )
        if self._on_password_change is not None:
            await self._on_password_change(user.id)
        return user

    async def disable(self, username: str) -> User:
        """Disable a user (logins fail from now on); ``on_disable`` runs before and after.

        Before the flag is committed, so that a failure at any later step cannot leave the
        sessions that existed alive beside a disabled account; after it, for a session that a
        login racing with this call created in between (a login re-reads the account once its
        session exists: it either sees the flag or its session is already there to be ended).
        Errors propagate; running ``disable`` again finishes the job. ``UserNotFound`` if
        there is no such user.
        """
        name = self._existing_name(username)
        found = await self.users.by_username(name)
        if found is None:
            raise UserNotFound()
        if self._on_disable is not None:
            await self._on_disable(found.user.id)
        user = await self.users.update(name, disabled=True)
        if self._on_disable is not None:
            await self._on_disable(user.id)
        return user

    async def enable(self, username: str) -> User:
        """Enable a disabled user again; ``UserNotFound`` if there is none."""
        return await self.users.update(self._existing_name(username), disabled=False)

    @staticmethod
    def _existing_name(username: str) -> str:
        try:
            return normalize_username(username)
        except InvalidUsername as e:
            # A name that cannot exist names no user.
            raise UserNotFound() from e

    async def authenticate(self, username: str, password: str, *, ip: str | None) -> User:
        """Check a login; return the user or raise.

        ``Throttled`` while the account or the client is blocked (checked first, before any
        hashing). Every other failure (unknown user, wrong password, disabled user, malformed
        input) is one ``InvalidCredentials`` with one message after the same argon2 work, so
        neither the answer nor its timing tells whether an account exists.
        """
        try:
            name = normalize_username(username)
        except InvalidUsername:
            # Still counted and throttled, under a key no valid name can have.
            name = "\x00invalid:" + unicodedata.normalize("NFKC", str(username)).casefold()
        await self.throttle.check(name, ip)
        # Hash at most the policy's maximum: enough for any real password, bounded for abuse.
        candidate = password[:PASSWORD_MAX] if isinstance(password, str) else ""
        found = None if name.startswith("\x00") else await self.users.by_username(name)
        if found is None:
            await self.hasher.dummy_verify(candidate)
            ok, new_hash = False, None
        else:
            ok, new_hash = await self.hasher.verify(found.password_hash, candidate)
        too_long = isinstance(password, str) and len(password) > PASSWORD_MAX
        if found is None or not ok or too_long or found.user.disabled:
            await self.throttle.record_failure(name, ip)
            raise InvalidCredentials()
        if new_hash is not None:
            # If the password changed meanwhile, the newer hash stays.
            with contextlib.suppress(UserNotFound):
                await self.users.update(
                    name, only_if_hash=found.password_hash, password_hash=new_hash
                )
        await self.throttle.record_success(name)
        return found.user
