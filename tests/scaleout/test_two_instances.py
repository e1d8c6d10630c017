"""Two real ``dojang serve`` processes behind no sticky load balancer: any instance will do.

Both share a private Redis (sessions, login throttling, revocation stream) and a fresh
PostgreSQL database (users, audiences), and load the same ``keys.json``. What one instance
does, the other sees at once; what ends on one is refused everywhere within a bound.
"""

from __future__ import annotations

from tests.scaleout.harness import (
    Deployment,
    Instance,
    check,
    login,
    logout,
    mint,
    poll,
    revoked,
    verifier,
)

BOUND = 1.0  # seconds: the propagation bound for the test (measured: milliseconds)


def test_login_on_a_check_on_b(pair: tuple[Instance, Instance]) -> None:
    """A session created by A is live on B: no stickiness, the store is shared."""
    a, b = pair
    with a.client() as ca, b.client() as cb:
        who = login(ca, "alice")
        resp = cb.get("/auth/check", headers={"cookie": who.cookie})
        assert resp.status_code == 200
        assert resp.headers["x-dojang-session"] == who.sid
        # B lists the session A created, with the device data the account page shows.
        listed = cb.get("/api/v1/sessions", headers={"cookie": who.cookie})
        assert listed.status_code == 200, listed.text
        assert who.sid in listed.text


def test_logout_on_b_refused_on_a_and_by_both_subscribers(
    pair: tuple[Instance, Instance], deployment: Deployment
) -> None:
    """Mint on A, end the session on B: A's /auth/check and both verifiers refuse within 1 s."""
    a, b = pair
    with (
        a.client() as ca,
        b.client() as cb,
        verifier(deployment, f"{a.url}/events/revocations", a) as by_sse,
        verifier(deployment, deployment.redis.url, a) as by_redis,
    ):
        who = login(ca, "alice")
        token = mint(ca, who)  # audience registered by the CLI in the shared database
        assert by_sse.verify(token)["sid"] == who.sid
        assert by_redis.verify(token)["sid"] == who.sid
        assert check(ca, who) == 200

        logout(cb, who)
        poll(lambda: check(ca, who) == 401, BOUND, "A refuses the session ended on B")
        poll(lambda: revoked(by_sse, token), BOUND, "SSE (via A) verifier refuses the token")
        poll(lambda: revoked(by_redis, token), BOUND, "Redis verifier refuses the token")
        assert check(cb, who) == 401


def test_token_minted_on_b_verifies_with_keys_from_a(
    pair: tuple[Instance, Instance], deployment: Deployment
) -> None:
    """One keys.json: a token minted by B checks against A's JWKS and A's issuer."""
    a, b = pair
    with (
        b.client() as cb,
        verifier(deployment, f"{a.url}/events/revocations", a) as by_sse,
    ):
        who = login(cb, "bob")
        claims = by_sse.verify(mint(cb, who))
        assert claims["iss"] == deployment.public_url
        assert claims["sid"] == who.sid
