"""A bounded loopback load run against one instance on Redis + PostgreSQL: no errors, flat RSS.

Several client threads each loop: log in, check, mint a token, check again, log out, check
(expecting 401). Every answer must be the expected one; the only 401s are the checks after
logout. The server's resident set size (``/proc/<pid>/status``) is sampled through the run and
the average of the last quarter may exceed that of the first quarter (after a warm-up) by at
most ``RSS_GROWTH``. Kept to ~20 s for ``make test``; the long soak is
``python -m bench.run scaleout`` territory.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter

import pytest

from tests.scaleout.harness import Instance, check, login, logout, mint, poll

DURATION_S = 20.0
WARMUP_S = 4.0
CLIENTS = 4
MAX_ROUNDS_PER_CLIENT = 5_000
RSS_GROWTH = 0.15


@pytest.mark.slow
def test_mixed_load_has_no_errors_and_flat_memory(one: Instance) -> None:
    """Logins, checks, token mints and logouts from 4 clients: zero errors, RSS flat."""
    stop = threading.Event()
    errors: list[str] = []
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def client_loop(user: str) -> None:
        with one.client() as client:
            for _ in range(MAX_ROUNDS_PER_CLIENT):
                if stop.is_set():
                    return
                try:
                    who = login(client, user)
                    assert check(client, who) == 200, "check after login"
                    mint(client, who)
                    assert check(client, who) == 200, "check after mint"
                    logout(client, who)
                    assert check(client, who) == 401, "check after logout"
                except (AssertionError, OSError) as exc:  # recorded, the run goes on
                    with lock:
                        errors.append(f"{user}: {exc!s:.200}")
                    return
                with lock:
                    counts["rounds"] += 1

    threads = [
        threading.Thread(target=client_loop, args=(("alice", "bob", "carol")[i % 3],))
        for i in range(CLIENTS)
    ]
    samples: list[tuple[float, int]] = []
    started = time.monotonic()
    for t in threads:
        t.start()
    try:

        def sample_and_done() -> bool:
            samples.append((time.monotonic() - started, one.rss_bytes()))
            return time.monotonic() - started >= DURATION_S or bool(errors)

        poll(sample_and_done, DURATION_S + 10, "the load run to finish", step=0.25)
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert not errors, errors[:5]
    assert counts["rounds"] > 50, f"too little load: {counts}"
    span = DURATION_S - WARMUP_S
    first = [rss for t, rss in samples if WARMUP_S <= t < WARMUP_S + span / 4]
    last = [rss for t, rss in samples if t >= DURATION_S - span / 4]
    growth = statistics.mean(last) / statistics.mean(first) - 1
    assert growth <= RSS_GROWTH, f"RSS grew {growth:.1%} ({counts['rounds']} rounds)"
