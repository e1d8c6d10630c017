"""Back-Channel Logout 1.0: tell every client that held an ended dojang session.

When a dojang session ends (logout, revocation, refresh-token reuse, expiry found by the sweep)
``on_sessions_ended`` revokes the session's refresh tokens, turns every client that got a code
in it into a *delivery record* and tries each once right away. Deliveries that fail stay
``pending`` with exponential backoff and are retried by ``drain`` (the background worker or
``python -m dojang.oidc drain``) until delivered or ``MAX_ATTEMPTS`` is reached — a client that
is down when the user logs out still hears about it when it comes back.

The logout token is minted at each attempt (BCL 1.0 §2.4: short ``exp``), so a late retry
carries a fresh, valid token rather than one that expired while the client was down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

import httpx

from dojang.oidc.store import Delivery
from dojang.oidc.tokens import logout_token

log = logging.getLogger("dojang.oidc")

MAX_ATTEMPTS: Final = 8
BACKOFF_BASE: Final = 10.0  # seconds before the 2nd attempt; doubles each time
BACKOFF_CAP: Final = 3600.0
DELIVERY_TIMEOUT: Final = 3.0
BATCH: Final = 100

if TYPE_CHECKING:
    from dojang.server.services import Services


class EndedSession(Protocol):
    """What is needed of an ended session (``dojang.sessions.model.Session`` fits)."""

    @property
    def sid(self) -> str: ...

    @property
    def user_id(self) -> str: ...


@dataclass(frozen=True, slots=True)
class _Ended:
    sid: str
    user_id: str


@dataclass(slots=True)
class DrainResult:
    """What one ``drain`` pass did."""

    delivered: int = 0
    retrying: int = 0
    failed: int = 0


def backoff(attempts: int) -> float:
    """Seconds to wait after ``attempts`` failed attempts: 10, 20, 40 … capped at an hour."""
    return min(BACKOFF_BASE * 2.0 ** max(attempts - 1, 0), BACKOFF_CAP)


async def on_sessions_ended(
    svc: Services, sessions: Iterable[EndedSession], *, http: httpx.AsyncClient | None = None
) -> DrainResult:
    """Revoke refresh tokens and notify clients of these ended sessions (idempotent).

    Safe to call more than once for the same session (the session hook, the sweep and a
    direct call after RP-initiated logout may all see it): each client is queued once.
    """
    ended = list(sessions)
    if not ended:
        return DrainResult()
    db = svc.oidc
    sids = [s.sid for s in ended]
    await db.revoke_for_sessions(sids)
    held = await db.take_client_sessions(sids)
    items: list[tuple[str, str, str, str]] = []
    for sid, client_id, user_id in held:
        client = await svc.clients.get_oidc_client(client_id)
        if client is not None and client.backchannel_logout_uri:
            items.append((client_id, sid, user_id, client.backchannel_logout_uri))
    if not items:
        return DrainResult()
    ids = await db.enqueue(items)
    return await drain(svc, http=http, ids=ids)


async def sweep(svc: Services, *, http: httpx.AsyncClient | None = None) -> DrainResult:
    """Find client-held sessions that ended without the hook (expiry, another process's
    logout before the hook was wired) and end them for the clients too."""
    db = svc.oidc
    now = svc.clock.now()
    dead: list[EndedSession] = []
    for sid, user_id in await db.client_session_sids(BATCH * 10):
        session = await svc.sessions.store.get_by_sid(sid)
        if session is None or session.is_expired(now):
            dead.append(_Ended(sid, user_id))
    return await on_sessions_ended(svc, dead, http=http)


async def drain(
    svc: Services, *, http: httpx.AsyncClient | None = None, ids: Iterable[int] | None = None
) -> DrainResult:
    """Attempt every due pending delivery (or only ``ids``), concurrently, each bounded."""
    db = svc.oidc
    due = await db.due(BATCH, ids)
    result = DrainResult()
    if not due:
        return result
    own = http is None
    client = http or httpx.AsyncClient(
        timeout=DELIVERY_TIMEOUT, trust_env=False, follow_redirects=False
    )
    try:
        outcomes = await asyncio.gather(*(_attempt(svc, client, d) for d in due))
    finally:
        if own:
            await client.aclose()
    for delivery, error in zip(due, outcomes, strict=True):
        attempts = delivery.attempts + 1
        if error is None:
            state, next_at = "delivered", svc.clock.now()
            result.delivered += 1
        elif attempts >= MAX_ATTEMPTS:
            state, next_at = "failed", svc.clock.now()
            result.failed += 1
            log.warning("back-channel logout to %s given up: %s", delivery.client_id, error)
        else:
            state, next_at = "pending", svc.clock.now() + backoff(attempts)
            result.retrying += 1
        await db.finish_attempt(
            delivery.id, state=state, attempts=attempts, next_at=next_at, error=error
        )
    return result


async def _attempt(svc: Services, http: httpx.AsyncClient, delivery: Delivery) -> str | None:
    """POST one logout token (BCL 1.0 §2.5); None on success, else a short reason."""
    token = logout_token(
        svc.keyset,
        issuer=svc.settings.issuer,
        client_id=delivery.client_id,
        sub=delivery.sub,
        sid=delivery.sid,
        now=svc.clock.now(),
    )
    try:
        response = await http.post(
            delivery.uri,
            data={"logout_token": token},
            headers={"cache-control": "no-store"},
            timeout=DELIVERY_TIMEOUT,
        )
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}"
    # BCL 1.0 §2.8: 200 (or 204) means the RP logged the session out.
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code}"


async def run_worker(svc: Services, *, interval: float = 5.0) -> None:
    """Background loop: sweep for ended sessions and drain due deliveries until cancelled."""
    while True:
        try:
            await sweep(svc)
            await drain(svc)
        except Exception:
            # Anything (a store outage, a bug) must not kill the worker for good. It fails
            # closed: a delivery is marked done only after its client acknowledged it, so a
            # failed pass leaves every pending delivery recorded, and the next tick retries.
            log.exception("back-channel logout worker pass failed")
        await asyncio.sleep(interval)
