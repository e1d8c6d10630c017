"""Users: creation, normalisation, password changes, disabling, and authenticate()."""

from __future__ import annotations

import pytest

from dojang.accounts import Accounts, InvalidUsername, PasswordHasher, normalize_username
from dojang.clock import FrozenClock
from dojang.errors import InvalidCredentials, UserExists, UserNotFound, WeakPassword
from dojang.storage import Database

PW = "correct horse battery"


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Alice", "alice"),
        ("ALICE@Example.COM", "alice@example.com"),
        ("ａｌｉｃｅ", "alice"),  # noqa: RUF001 - fullwidth letters fold under NFKC
        ("a.b_c-d", "a.b_c-d"),
        ("x" * 64, "x" * 64),
    ],
)
def test_normalize_username(raw: str, normalized: str) -> None:
    assert normalize_username(raw) == normalized


@pytest.mark.parametrize(
    "raw",
    ["", "x" * 65, "al ice", "alice\n", "ali/ce", "\u0430lice", "한국", "alice\x00", " alice"],
)
def test_normalize_username_rejects(raw: str) -> None:
    """Cyrillic look-alikes, whitespace and control characters cannot name an account."""
    with pytest.raises(InvalidUsername):
        normalize_username(raw)


async def test_create_and_get(accounts: Accounts, clock: FrozenClock) -> None:
    user = await accounts.create_user("Alice", PW)
    assert user.username == "alice"
    assert user.disabled is False
    assert user.created_at == user.password_changed_at == clock.now()
    assert len(user.id) == 22
    assert await accounts.get(user.id) == user
    assert await accounts.get_by_username("ALICE") == user
    assert await accounts.get("missing") is None
    assert await accounts.get_by_username("bob") is None
    assert await accounts.get_by_username("not valid!") is None


async def test_user_repr_has_no_hash(accounts: Accounts) -> None:
    user = await accounts.create_user("alice", PW)
    record = await accounts.users.by_id(user.id)
    assert record is not None
    assert "$argon2" not in repr(record)
    assert "$argon2" not in repr(user)


async def test_create_rejects(accounts: Accounts) -> None:
    await accounts.create_user("alice", PW)
    with pytest.raises(UserExists):
        await accounts.create_user("ALICE", PW)
    with pytest.raises(InvalidUsername):
        await accounts.create_user("bad name", PW)
    with pytest.raises(WeakPassword):
        await accounts.create_user("bob", "short")
    assert [u.username for u in await accounts.list_users()] == ["alice"]


async def test_duplicate_insert_race_is_user_exists(accounts: Accounts) -> None:
    """Two creates passing the early check at once: the unique constraint decides."""
    user = await accounts.create_user("alice", PW)
    with pytest.raises(UserExists):
        await accounts.users.insert(user, "$argon2id$whatever")


async def test_list_users_sorted(accounts: Accounts) -> None:
    for name in ("carol", "alice", "bob"):
        await accounts.create_user(name, PW)
    assert [u.username for u in await accounts.list_users()] == ["alice", "bob", "carol"]


async def test_authenticate(accounts: Accounts) -> None:
    user = await accounts.create_user("alice", PW)
    assert await accounts.authenticate("Alice", PW, ip="192.0.2.1") == user


async def _error_for(accounts: Accounts, username: str, password: str) -> tuple[type, str]:
    with pytest.raises(InvalidCredentials) as info:
        await accounts.authenticate(username, password, ip=None)
    return type(info.value), str(info.value)


async def test_one_generic_error_for_every_bad_login(accounts: Accounts) -> None:
    """Stops username enumeration: unknown, wrong password and disabled look the same."""
    await accounts.create_user("alice", PW)
    await accounts.create_user("dave", PW)
    await accounts.disable("dave")
    errors = {
        await _error_for(accounts, "nobody", PW),
        await _error_for(accounts, "alice", "wrong password"),
        await _error_for(accounts, "dave", PW),
        await _error_for(accounts, "not a valid name!", PW),
        await _error_for(accounts, "alice", PW + "x" * 2000),
    }
    assert errors == {(InvalidCredentials, "The username or password is incorrect.")}


async def test_unknown_user_costs_a_hash(db: Database, clock: FrozenClock) -> None:
    """The unknown-user path runs argon2 too (timing parity with a wrong password)."""
    calls: list[str] = []

    class CountingHasher(PasswordHasher):
        async def dummy_verify(self, password: str) -> None:
            calls.append(password)
            await super().dummy_verify(password)

    accounts = Accounts(
        db, hasher=CountingHasher(time_cost=1, memory_cost=8, parallelism=1), clock=clock
    )
    with pytest.raises(InvalidCredentials):
        await accounts.authenticate("nobody", PW, ip=None)
    assert calls == [PW]


async def test_transparent_rehash(db: Database, clock: FrozenClock) -> None:
    weak = Accounts(
        db, hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1), clock=clock
    )
    user = await weak.create_user("alice", PW)
    before = await weak.users.by_id(user.id)
    assert before is not None and "t=1" in before.password_hash
    stronger = Accounts(
        db, hasher=PasswordHasher(time_cost=2, memory_cost=16, parallelism=1), clock=clock
    )
    await stronger.authenticate("alice", PW, ip=None)
    after = await stronger.users.by_id(user.id)
    assert after is not None and "m=16,t=2,p=1" in after.password_hash
    assert await stronger.authenticate("alice", PW, ip=None) == user


async def test_set_password(db: Database, hasher: PasswordHasher, clock: FrozenClock) -> None:
    ended: list[str] = []

    async def on_change(user_id: str) -> None:
        ended.append(user_id)

    accounts = Accounts(db, hasher=hasher, clock=clock, on_password_change=on_change)
    user = await accounts.create_user("alice", PW)
    clock.advance(100)
    changed = await accounts.set_password("ALICE", "new password 123")
    assert changed.password_changed_at == clock.now()
    assert ended == [user.id, user.id]  # before and after the new hash is committed
    with pytest.raises(InvalidCredentials):
        await accounts.authenticate("alice", PW, ip=None)
    assert await accounts.authenticate("alice", "new password 123", ip=None) == changed


async def test_set_password_rejects(accounts: Accounts) -> None:
    await accounts.create_user("alice", PW)
    with pytest.raises(WeakPassword):
        await accounts.set_password("alice", "short")
    with pytest.raises(UserNotFound):
        await accounts.set_password("bob", "long enough password")
    with pytest.raises(UserNotFound):
        await accounts.set_password("not valid!", "long enough password")
    assert (await accounts.authenticate("alice", PW, ip=None)).username == "alice"


async def test_disable_and_enable(db: Database, hasher: PasswordHasher, clock: FrozenClock) -> None:
    disabled_ids: list[str] = []

    async def on_disable(user_id: str) -> None:
        disabled_ids.append(user_id)

    accounts = Accounts(db, hasher=hasher, clock=clock, on_disable=on_disable)
    user = await accounts.create_user("alice", PW)
    assert (await accounts.disable("alice")).disabled is True
    assert disabled_ids == [user.id, user.id]  # before and after the flag is committed
    with pytest.raises(InvalidCredentials):
        await accounts.authenticate("alice", PW, ip=None)
    assert (await accounts.enable("alice")).disabled is False
    assert (await accounts.authenticate("alice", PW, ip=None)).id == user.id
    with pytest.raises(UserNotFound):
        await accounts.disable("bob")
    with pytest.raises(UserNotFound):
        await accounts.enable("bob")
