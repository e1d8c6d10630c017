"""The dummy verify for unknown users costs exactly what a wrong password costs, from the start."""

from __future__ import annotations

from collections import Counter
from typing import Any

import argon2
import pytest

from dojang.accounts import Accounts, PasswordHasher
from dojang.errors import InvalidCredentials

from .conftest import CHEAP

PW = "correct horse battery"


@pytest.fixture
def argon2_calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts of the real argon2 ``hash`` and ``verify`` calls made from now on."""
    calls: Counter[str] = Counter()
    real_hash, real_verify = argon2.PasswordHasher.hash, argon2.PasswordHasher.verify

    def counting_hash(self: argon2.PasswordHasher, *args: Any, **kwargs: Any) -> str:
        calls["hash"] += 1
        return real_hash(self, *args, **kwargs)

    def counting_verify(self: argon2.PasswordHasher, *args: Any, **kwargs: Any) -> bool:
        calls["verify"] += 1
        return real_verify(self, *args, **kwargs)

    monkeypatch.setattr(argon2.PasswordHasher, "hash", counting_hash)
    monkeypatch.setattr(argon2.PasswordHasher, "verify", counting_verify)
    return calls


async def test_first_unknown_user_login_does_the_same_argon2_work_as_a_wrong_password(
    accounts: Accounts, argon2_calls: Counter[str]
) -> None:
    """Enumeration by timing: the very first "no such user" must not pay for an extra hash."""
    await accounts.create_user("alice", PW)
    argon2_calls.clear()
    with pytest.raises(InvalidCredentials):
        await accounts.authenticate("nobody", PW, ip=None)  # the process's first unknown user
    unknown = dict(argon2_calls)
    argon2_calls.clear()
    with pytest.raises(InvalidCredentials):
        await accounts.authenticate("alice", "wrong password!", ip=None)
    assert unknown == dict(argon2_calls) == {"verify": 1}


async def test_dummy_hash_is_made_when_the_hasher_is_built(argon2_calls: Counter[str]) -> None:
    hasher = PasswordHasher(**CHEAP)
    assert argon2_calls == {"hash": 1}
    argon2_calls.clear()
    await hasher.dummy_verify("anything at all")
    await hasher.dummy_verify("anything else")
    assert argon2_calls == {"verify": 2}
