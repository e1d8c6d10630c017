"""RP-initiated logout and Back-Channel Logout 1.0, with the example RP on a real loopback port.

dojang runs in-process; the RP (``examples/rp``) runs under uvicorn on 127.0.0.1 and reaches
dojang through an ASGI transport. Logout tokens travel over real HTTP to the RP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from examples.rp.app import RPConfig, RPState, create_rp
from starlette.applications import Starlette

from dojang.jose import decode_segments
from dojang.oidc import drain, on_sessions_ended, sweep
from dojang.oidc.grants import store
from dojang.oidc.logout import MAX_ATTEMPTS, backoff
from dojang.oidc.tokens import BACKCHANNEL_EVENT, logout_token
from tests.oidc.conftest import _hidden, client_url
from tests.oidc.live import free_port, serve
from tests.server.conftest import Env


@dataclass
class LiveRP:
    """The example RP app, its port and a browser (cookie jar) for it."""

    app: Starlette
    port: int
    client_id: str
    base: str

    @property
    def state(self) -> RPState:
        """The RP's in-memory sessions and received logouts."""
        s: RPState = self.app.state.rp
        return s


async def make_rp(env: Env, name: str = "shop") -> LiveRP:
    """Register the example RP at dojang and build it (not yet serving)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    client, secret = await env.services.clients.add_oidc_client(
        name,
        client_type="confidential",
        redirect_uris=[base + "/callback"],
        post_logout_redirect_uris=[base + "/signed-out"],
        backchannel_logout_uri=base + "/backchannel-logout",
    )
    assert secret is not None
    config = RPConfig(env.settings.issuer, client.client_id, secret, base)
    app = create_rp(config, transport=env.client._transport, clock=env.clock)
    return LiveRP(app, port, client.client_id, base)


async def sign_in(env: Env, rp: LiveRP, browser: httpx.AsyncClient) -> None:
    """The browser signs in at the RP through dojang (dojang leg in-process)."""
    r = await browser.get(rp.base + "/login")
    assert r.status_code == 302
    authorize = r.headers["location"]
    d = await env.client.get(authorize)
    if d.status_code == 200 and 'value="allow"' in d.text:
        csrf = d.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        d = await env.client.post(
            "/oauth2/authorize", data={**_hidden(d.text), "csrf_token": csrf, "decision": "allow"}
        )
    callback = client_url(d)
    c = await browser.get(callback)
    assert c.status_code == 303, c.text
    me = (await browser.get(rp.base + "/me")).json()
    assert me["signed_in"] is True


@pytest.fixture
async def browser() -> AsyncIterator[httpx.AsyncClient]:
    """A cookie jar for talking to the RP over real loopback HTTP."""
    async with httpx.AsyncClient(trust_env=False) as c:
        yield c


async def _dojang_sid(env: Env) -> str:
    sid: str = (await env.client.get("/api/v1/session")).json()["sid"]
    return sid


async def test_rp_initiated_logout_notifies_the_rp(env: Env, browser: httpx.AsyncClient) -> None:
    await env.login()
    rp = await make_rp(env)
    async with serve(rp.app, rp.port):
        await sign_in(env, rp, browser)
        sid = await _dojang_sid(env)
        r = await browser.get(rp.base + "/logout")
        assert r.status_code == 303
        end = await env.client.get(r.headers["location"])  # hint matches: no confirmation
        target = client_url(end)
        assert target.startswith(rp.base + "/signed-out?state=")
        assert (await env.client.get("/api/v1/session")).status_code == 401
        assert rp.state.logouts == [{"sid": sid, "sub": rp.state.logouts[0]["sub"], "ended": 0}]
    deliveries = await store(env.services).deliveries(sid)
    assert [d.state for d in deliveries] == ["delivered"]


async def test_dojang_logout_ends_the_rp_session(env: Env, browser: httpx.AsyncClient) -> None:
    """Logging out of dojang (any way) ends the RP's own session via the back channel."""
    await env.login()
    rp = await make_rp(env)
    async with serve(rp.app, rp.port):
        await sign_in(env, rp, browser)
        session = (await env.client.get("/api/v1/session")).json()
        r = await env.client.delete(
            "/api/v1/session", headers={"x-csrf-token": session["csrf_token"]}
        )
        assert r.status_code in (200, 204)
        # The session hook delivers the logout token in the background.
        await env.services.settle()
        assert (await browser.get(rp.base + "/me")).json() == {"signed_in": False}
        assert rp.state.logouts[0]["ended"] == 1
        # Idempotent: the background sweep finding the same ended session notifies nobody twice.
        assert (await sweep(env.services)).delivered == 0


async def test_logout_token_shape(env: Env) -> None:
    token = logout_token(
        env.services.keyset,
        issuer=env.settings.issuer,
        client_id="c1",
        sub="u1",
        sid="s1",
        now=env.clock.now(),
    )
    header, payload, _, _ = decode_segments(token)
    import json

    claims = json.loads(payload)
    assert header["typ"] == "logout+jwt"
    assert claims["events"] == {BACKCHANNEL_EVENT: {}}
    assert "nonce" not in claims and claims["sid"] == "s1" and claims["aud"] == "c1"
    assert claims["exp"] - claims["iat"] <= 120


async def test_client_down_then_back_gets_the_logout(env: Env, browser: httpx.AsyncClient) -> None:
    """A client that is down at logout time is retried with backoff and still notified."""
    await env.login()
    rp = await make_rp(env)
    async with serve(rp.app, rp.port):
        await sign_in(env, rp, browser)
    # The RP is down now.
    sid = await _dojang_sid(env)
    session = await env.services.sessions.store.get_by_sid(sid)
    assert session is not None
    await env.services.sessions.revoke(sid)  # the session hook tries once, and fails
    await env.services.settle()
    again = await on_sessions_ended(env.services, [session])
    assert (again.delivered, again.retrying) == (0, 0)  # idempotent: no second record
    [pending] = await store(env.services).deliveries(sid)
    assert pending.state == "pending" and pending.attempts == 1
    assert (await drain(env.services)).retrying == 0  # not due yet: backoff
    env.clock.advance(backoff(1))
    async with serve(rp.app, rp.port):
        result = await drain(env.services)
        assert result.delivered == 1
        assert (await browser.get(rp.base + "/me")).json() == {"signed_in": False}
    [done] = await store(env.services).deliveries(sid)
    assert done.state == "delivered" and done.attempts == 2


async def test_retries_are_bounded(env: Env) -> None:
    dead_port = free_port()
    client, _ = await env.services.clients.add_oidc_client(
        "gone",
        client_type="confidential",
        redirect_uris=[f"http://127.0.0.1:{dead_port}/cb"],
        backchannel_logout_uri=f"http://127.0.0.1:{dead_port}/bcl",
    )
    await env.login()
    sid = await _dojang_sid(env)
    db = store(env.services)
    await db.add_client_session(sid, client.client_id, "u")
    session = await env.services.sessions.store.get_by_sid(sid)
    assert session is not None
    await on_sessions_ended(env.services, [session])
    for attempt in range(1, MAX_ATTEMPTS):
        env.clock.advance(backoff(attempt))
        await drain(env.services)
    [record] = await db.deliveries(sid)
    assert record.state == "failed" and record.attempts == MAX_ATTEMPTS
    assert record.last_error == "ConnectError"


async def test_rp_refuses_forged_logout_token(env: Env, browser: httpx.AsyncClient) -> None:
    """A logout token not signed by dojang (or an ID token posted instead) is refused."""
    await env.login()
    rp = await make_rp(env)
    async with serve(rp.app, rp.port):
        await sign_in(env, rp, browser)
        # An ID token is not a logout token (typ), even though dojang signed it.
        from dojang.oidc.tokens import id_token

        idt = id_token(
            env.services.keyset,
            issuer=env.settings.issuer,
            client_id=rp.client_id,
            sub="x",
            sid=await _dojang_sid(env),
            auth_time=env.clock.now(),
            amr=["pwd"],
            now=env.clock.now(),
        )
        r = await browser.post(rp.base + "/backchannel-logout", data={"logout_token": idt})
        assert r.status_code == 400
        assert (await browser.get(rp.base + "/me")).json()["signed_in"] is True


async def test_post_logout_redirect_must_be_registered(env: Env) -> None:
    await env.login()
    rp = await make_rp(env)
    r = await env.client.get(
        "/oauth2/logout",
        params={"client_id": rp.client_id, "post_logout_redirect_uri": "https://evil.example/"},
    )
    assert r.status_code == 400 and "location" not in r.headers
    assert (await env.client.get("/api/v1/session")).status_code == 200


async def test_logout_without_hint_asks_first(env: Env) -> None:
    """Logout CSRF: a bare cross-site link does not end the session; the form (with token) does."""
    await env.login()
    r = await env.client.get("/oauth2/logout")
    assert r.status_code == 200 and 'id="confirm-logout"' in r.text
    assert (await env.client.get("/api/v1/session")).status_code == 200
    forged = await env.client.post("/oauth2/logout", data={"csrf_token": "nope"})
    assert forged.status_code == 403
    csrf = r.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    ok = await env.client.post("/oauth2/logout", data={"csrf_token": csrf})
    assert ok.status_code == 200 and "Signed out" in ok.text
    assert (await env.client.get("/api/v1/session")).status_code == 401
