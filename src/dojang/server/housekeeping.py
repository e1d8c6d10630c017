"""Housekeeping: forget what can no longer matter, so tables stay the size of live state.

Every serving process runs :func:`run_housekeeping`; with several instances they all do, which
is harmless (every purge is one idempotent ``DELETE ... WHERE <expired>``) and means no
instance is special. What is purged, and why each is safe:

* sessions past ``expires_at`` (the SQL store; Redis expires its own keys by TTL, and scanning
  a million keys every minute would cost more than it saves);
* revocation events past their ``exp`` (the tokens they cover have expired too);
* individually revoked access-token ids (RFC 7009) and redeemed one-time/assertion ``jti``\\ s
  past the expiry of the token they belong to: an expired token is refused anyway;
* authorization codes expired for longer than :data:`CODE_GRACE` (a replayed code is still
  recognised for a while, so it can revoke what it produced);
* refresh tokens past their expiry (never later than their session's absolute end);
* relying-party session records older than the longest possible dojang session;
* finished back-channel logout deliveries older than :data:`DELIVERY_KEEP` (pending ones never);
* login-throttle state that has decayed.

The audit trail is never purged here: it is append-only by design, and retention is the
operator's decision.

A purge that fails (store down) is logged and retried on the next round; one failing purge
never stops the others.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from dojang.errors import StoreUnavailable
from dojang.server.services import Services
from dojang.sessions.backends.redis import RedisSessionStore
from dojang.tokens.backends.sql import SqlReplayStore

log = logging.getLogger("dojang.housekeeping")

INTERVAL = 60.0
"""Seconds between rounds (each round waits 80-120% of it, so instances drift apart)."""

CODE_GRACE = 3600.0
"""How long an expired authorization code is kept to recognise its replay."""

DELIVERY_KEEP = 7 * 86400.0
"""How long a finished back-channel delivery stays visible (``dojang``'s delivery record)."""


def _jobs(svc: Services) -> dict[str, Callable[[], Awaitable[int]]]:
    now = svc.clock.now()
    oidc = svc.oidc
    longest_session = max(
        svc.settings.session_absolute_lifetime, svc.settings.session_remember_me_lifetime
    )
    jobs: dict[str, Callable[[], Awaitable[int]]] = {
        "events": lambda: svc.events.purge(now),
        "revoked_jtis": svc.clients.purge_revoked,
        "used_jtis": SqlReplayStore(svc.db, clock=svc.clock).purge,
        "authorization_codes": lambda: oidc.purge_codes(now - CODE_GRACE),
        "refresh_tokens": lambda: oidc.purge_refresh(now),
        "client_sessions": lambda: oidc.purge_client_sessions(now - longest_session),
        "backchannel_deliveries": lambda: oidc.purge_deliveries(now - DELIVERY_KEEP),
        "login_throttle": svc.accounts.throttle.purge,
    }
    if not isinstance(svc.sessions.store, RedisSessionStore):
        jobs["sessions"] = lambda: svc.sessions.store.purge_expired(now)
    return jobs


async def purge_once(svc: Services) -> dict[str, int]:
    """Run every purge once; return rows removed per kind (a failed kind is left out)."""
    removed: dict[str, int] = {}
    for name, job in _jobs(svc).items():
        try:
            removed[name] = await job()
        except StoreUnavailable as exc:
            log.warning("housekeeping: %s not purged (%s); next round retries", name, exc)
    purged = {k: v for k, v in removed.items() if v}
    if purged:
        log.info("housekeeping purged %s", ", ".join(f"{k}={v}" for k, v in sorted(purged.items())))
    return removed


async def run_housekeeping(svc: Services, interval: float = INTERVAL) -> None:
    """Purge every ``interval`` seconds (jittered) until cancelled; never raises otherwise."""
    while True:
        await asyncio.sleep(interval * random.uniform(0.8, 1.2))  # noqa: S311 - jitter only
        try:
            await purge_once(svc)
        except Exception:  # a bug in one round must not end housekeeping for good
            log.exception("housekeeping round failed")
