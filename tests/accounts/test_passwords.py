"""argon2id hashing, transparent rehash, dummy verify, password policy."""

from __future__ import annotations

import pytest

from dojang.accounts import Accounts, PasswordHasher, check_password_policy
from dojang.errors import WeakPassword


async def test_hash_and_verify(hasher: PasswordHasher) -> None:
    h = await hasher.hash("correct horse")
    assert h.startswith("$argon2id$")
    assert "correct horse" not in h
    assert await hasher.verify(h, "correct horse") == (True, None)
    assert await hasher.verify(h, "wrong horse!") == (False, None)


async def test_hashes_are_salted(hasher: PasswordHasher) -> None:
    assert await hasher.hash("same password") != await hasher.hash("same password")


async def test_rehash_when_parameters_change(hasher: PasswordHasher) -> None:
    old = await hasher.hash("correct horse")
    stronger = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
    ok, new = await stronger.verify(old, "correct horse")
    assert ok is True
    assert new is not None and new != old
    assert "t=2" in new and "m=16" in new
    assert await stronger.verify(new, "correct horse") == (True, None)


async def test_no_rehash_for_wrong_password(hasher: PasswordHasher) -> None:
    old = await hasher.hash("correct horse")
    stronger = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
    assert await stronger.verify(old, "wrong horse!") == (False, None)


@pytest.mark.parametrize("bad_hash", ["", "not a hash", "$argon2id$v=19$m=8,t=1,p=1$broken"])
async def test_corrupt_hash_fails_closed(hasher: PasswordHasher, bad_hash: str) -> None:
    assert await hasher.verify(bad_hash, "anything at all") == (False, None)


def test_repr_shows_parameters_only(hasher: PasswordHasher) -> None:
    assert repr(hasher) == "PasswordHasher(argon2id t=1 m=8 p=1)"


@pytest.mark.parametrize("pw", ["", "short", "1234567", "x" * 1025])
def test_policy_rejects(pw: str) -> None:
    with pytest.raises(WeakPassword):
        check_password_policy(pw)


@pytest.mark.parametrize("pw", ["12345678", "x" * 1024, "비밀번호비밀번호"])
async def test_policy_accepts(accounts: Accounts, pw: str) -> None:
    check_password_policy(pw)
    await accounts.create_user("alice", pw)
    assert (await accounts.authenticate("alice", pw, ip=None)).username == "alice"
