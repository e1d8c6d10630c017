"""DenyList: entries live exactly as long as the tokens they cover; writers are thread-safe."""

from __future__ import annotations

import threading

from dojang.clock import FrozenClock
from dojang.verify import DenyList


def test_entries_expire_with_their_tokens(clock: FrozenClock) -> None:
    deny = DenyList(clock=clock)
    now = clock.now()
    deny.add_sid("s1", now + 10)
    deny.add_jti("j1", now + 20)
    deny.revoke_user_before("u1", now, now + 30)
    assert deny.is_revoked({"sid": "s1"}) and deny.is_revoked({"jti": "j1"})
    assert deny.is_revoked({"sub": "u1", "iat": now - 1})
    assert not deny.is_revoked({"sub": "u1", "iat": now + 1})
    clock.advance(25)
    assert deny.purge() == 2
    assert len(deny) == 1 and not deny.is_revoked({"sid": "s1"})


def test_later_user_cutoff_wins(clock: FrozenClock) -> None:
    deny = DenyList(clock=clock)
    now = clock.now()
    deny.revoke_user_before("u1", now + 5, now + 60)
    deny.revoke_user_before("u1", now, now + 30)  # an older event arriving late
    assert deny.is_revoked({"sub": "u1", "iat": now + 4})


def test_hostile_claim_types_do_not_raise(clock: FrozenClock) -> None:
    deny = DenyList(clock=clock)
    deny.revoke_user_before("u1", clock.now(), clock.now() + 60)
    assert not deny.is_revoked({"sid": ["x"], "jti": {"a": 1}, "sub": ["u1"]})
    assert deny.is_revoked({"sub": "u1", "iat": "0"})  # unusable iat: fail closed


def test_concurrent_writers(clock: FrozenClock) -> None:
    deny = DenyList(clock=clock)
    exp = clock.now() + 60

    def writer(n: int) -> None:
        for i in range(500):
            deny.add_sid(f"s{n}-{i}", exp)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(deny) == 4000
