"""Faults in a scale-out deployment: Redis down and back, Redis restarted, dojang restarted.

* Redis unreachable ⇒ fail closed: ``/auth/check`` answers 503, never 200 (a session that
  cannot be looked up is not a session), and dojang recovers by itself once Redis is back.
* Redis restarted with append-only persistence ⇒ nothing is lost: live sessions still check,
  ended ones stay ended, revocations stay in the stream for subscribers.
* A dojang instance restarted ⇒ its SSE subscribers resume from ``Last-Event-ID`` and get
  every revocation published (by the other instance) while it was down.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from tests.scaleout.harness import (
    Deployment,
    Instance,
    check,
    login,
    logout,
    mint,
    poll,
    refused,
    revoked,
    verifier,
)

BOUND = 1.0
RECOVERY = 15.0  # reconnect back-offs (redis-py, SSE) are seconds, not minutes
MAX_REQUESTS = 20_000


@dataclass
class Traffic:
    """``/auth/check`` in a loop on a thread: (sent, received, status) per request."""

    instance: Instance
    cookie: str
    seen: list[tuple[float, float, int]] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def run(self, limit_s: float) -> None:
        deadline = time.monotonic() + limit_s
        with self.instance.client() as client:
            while not self.done.is_set() and time.monotonic() < deadline:
                if len(self.seen) >= MAX_REQUESTS:
                    break
                sent = time.monotonic()
                status = client.get("/auth/check", headers={"cookie": self.cookie}).status_code
                self.seen.append((sent, time.monotonic(), status))

    def count(self, status: int, after: float = 0.0) -> int:
        return sum(1 for sent, _, s in self.seen if s == status and sent > after)


def test_redis_outage_fails_closed_then_recovers(
    pair: tuple[Instance, Instance], deployment: Deployment
) -> None:
    """Stop Redis under load: 503s, never a 200; start it again: 200s, no dojang restart."""
    a, _ = pair
    with a.client() as ca:
        who = login(ca, "alice")
    traffic = Traffic(a, who.cookie)
    thread = threading.Thread(target=traffic.run, args=(60.0,), daemon=True)
    thread.start()
    try:
        poll(lambda: traffic.count(200) >= 20, 10.0, "traffic flowing")
        deployment.redis.stop()
        stopped = time.monotonic()
        poll(lambda: traffic.count(503, stopped) >= 20, 10.0, "503s while Redis is down")
        restarting = time.monotonic()
        deployment.redis.start()
        restarted = time.monotonic()
        poll(lambda: traffic.count(200, restarted) >= 20, RECOVERY, "200s after Redis is back")
    finally:
        traffic.done.set()
        thread.join(10)
    statuses = {s for _, _, s in traffic.seen}
    assert statuses <= {200, 503}, f"unexpected statuses {statuses}"
    during = [s for sent, got, s in traffic.seen if sent > stopped and got < restarting]
    assert during and set(during) == {503}, "a request answered 200 while Redis was down"
    with a.client() as ca:  # new logins work again too
        assert check(ca, login(ca, "bob")) == 200


def test_sessions_and_revocations_survive_a_redis_restart(
    pair: tuple[Instance, Instance], deployment: Deployment
) -> None:
    """AOF Redis restarted: live session still 200, ended one 401, verifiers still refuse."""
    a, b = pair
    with (
        a.client() as ca,
        b.client() as cb,
        verifier(deployment, deployment.redis.url, a) as by_redis,
    ):
        live = login(ca, "alice")
        ended = login(ca, "bob")
        ended_token = mint(ca, ended)
        logout(cb, ended)
        poll(lambda: revoked(by_redis, ended_token), BOUND, "revocation before the restart")

        deployment.redis.stop()
        deployment.redis.start()

        poll(lambda: check(cb, live) == 200, RECOVERY, "live session checks on B after restart")
        assert check(ca, live) == 200
        assert check(ca, ended) == 401
        assert check(cb, ended) == 401
        assert refused(by_redis, ended_token)
        # The subscriber reconnects and keeps the revocation (re-read from the stream).
        sub = by_redis.subscription
        assert sub is not None
        poll(lambda: sub.in_sync, RECOVERY, "Redis subscriber back in sync")
        assert revoked(by_redis, ended_token)
        # New sessions are written again.
        assert check(cb, login(ca, "carol")) == 200


def test_first_logout_after_a_redis_restart_reaches_subscribers(
    pair: tuple[Instance, Instance], deployment: Deployment
) -> None:
    """The first revocation after a Redis restart must not be lost.

    Regression: the event bus published on a stale pooled connection, the logout answered 503
    after the session was already deleted, and the session.revoked event never went out.
    """
    a, b = pair
    with (
        a.client() as ca,
        b.client() as cb,
        verifier(deployment, deployment.redis.url, a) as by_redis,
    ):
        who = login(ca, "alice")
        token = mint(ca, who)
        logout(cb, login(cb, "bob"))  # B's event bus has a pooled connection now
        deployment.redis.stop()
        deployment.redis.start()
        poll(lambda: check(cb, who) == 200, RECOVERY, "session store back on B")
        resp = cb.delete("/api/v1/session", headers=who.headers)
        assert resp.status_code == 204
        assert check(ca, who) == 401
        poll(lambda: revoked(by_redis, token), 3.0, "the revocation reaches the subscriber")


def test_sse_subscriber_resumes_across_a_dojang_restart(
    pair: tuple[Instance, Instance], deployment: Deployment
) -> None:
    """A goes down, B ends a session meanwhile, A comes back: A's SSE subscriber gets it."""
    a, b = pair
    with (
        b.client() as cb,
        verifier(deployment, f"{a.url}/events/revocations", b) as by_sse,
    ):
        first, second = login(cb, "carol"), login(cb, "carol")
        first_token, second_token = mint(cb, first), mint(cb, second)
        assert by_sse.verify(first_token)["sid"] == first.sid

        a.stop()
        logout(cb, first)  # published to the stream while A (the feed) is down
        a.start()

        poll(lambda: revoked(by_sse, first_token), RECOVERY, "revocation missed while A was down")
        assert by_sse.verify(second_token)["sid"] == second.sid
        logout(cb, second)
        poll(lambda: revoked(by_sse, second_token), BOUND, "live revocation after A's restart")
        with a.client() as ca:
            assert check(ca, first) == 401
            assert check(ca, second) == 401
