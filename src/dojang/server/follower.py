"""This process's own reader of the event log: every revocation, whoever published it, applied here.

A serving process applies the revocations it publishes itself at once (``build_services``'s
``on_revoke``). Revocations published by another worker, another instance or the CLI reach it
through the event log, read by :class:`EventFollower` from the same bus the SSE feed serves:
woken by a local publish, otherwise polled every ``poll_interval`` of the bus (one second).
Applying them keeps this process's deny list (its own verifier: introspection, token exchange,
revocation) and its forward-auth token cache in step with the rest of the deployment. Session
checks never depend on it: they read the session store.

It is also what the operator watches (``dojang.server.metrics``):

* ``dojang_revocation_propagation_seconds``: for every revocation read live, the time from the
  event's ``created_at`` (the publisher's clock) to its application here;
* ``dojang_event_subscriber_lag_seconds``: time since the follower last knew it had applied
  the whole log;
* ``dojang_events_applied_total{kind}``, and ``dojang_store_errors_total{store="events"}`` for
  reads that failed (retried after ``retry_delay``).

At start-up the follower replays every unexpired event (the deny list of a restarted process
is empty; those replays are not propagation measurements). If the log's newest id falls below
the follower's position (the log was restored or replaced), it replays the log again:
applying an event twice is harmless.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from dojang.errors import StoreUnavailable
from dojang.events import Event
from dojang.server.services import Services

log = logging.getLogger("dojang.events")

REVOCATION_KINDS: Final = frozenset({"session.revoked", "user.sessions_revoked", "token.revoked"})

MAX_WAIT: Final = 15.0
"""Longest wait for news between reads (the buses poll more often: once a second)."""


class EventFollower:
    """Follows the event log of ``svc`` and applies each event to this process's state."""

    def __init__(self, svc: Services, *, batch: int = 500, retry_delay: float = 1.0) -> None:
        self.svc = svc
        self.batch = batch
        self.retry_delay = retry_delay
        self.cursor = 0
        self._replaying = True
        self.stats = svc.metrics.events
        self.stats.now = svc.clock.now

    async def catch_up(self) -> int:
        """Read and apply every event after the cursor; return how many were applied.

        ``StoreUnavailable`` propagates (the caller counts it and retries).
        """
        svc = self.svc
        applied = 0
        while True:
            # The newest id *before* the read: everything up to it is visible to the read, so
            # a short page means every event up to ``top`` has been applied.
            top = await svc.events.last_id()
            if top < self.cursor:
                log.warning(
                    "event log went back (newest id %d, follower at %d); replaying it",
                    top,
                    self.cursor,
                )
                self.cursor, self._replaying = 0, True
            events = await svc.events.since(self.cursor, now=svc.clock.now(), limit=self.batch)
            for event in events:
                self.apply(event, live=not self._replaying)
                self.cursor = event.id
            applied += len(events)
            if len(events) < self.batch:
                self.cursor = max(self.cursor, top)
                self._replaying = False
                self.stats.caught_up_at = svc.clock.now()
                return applied

    def apply(self, event: Event, *, live: bool = True) -> None:
        """Apply one (verified) event; ``live`` ones are measured for propagation."""
        svc, data = self.svc, event.data
        if event.kind == "session.revoked":
            svc.revocations.add_sid(data["sid"], event.exp)
            svc.forward_tokens.drop_session(data["sid"])
        elif event.kind == "token.revoked":
            svc.revocations.add_jti(data["jti"], event.exp)
        elif event.kind == "user.sessions_revoked":
            svc.revocations.revoke_user_before(data["sub"], float(data["before"]), event.exp)
        # key.retired: the key file watcher reloads keys (dojang.server.keywatch).
        applied = self.stats.applied
        applied[event.kind] = applied.get(event.kind, 0) + 1
        if live and event.kind in REVOCATION_KINDS:
            lag = max(0.0, svc.clock.now() - event.created_at)
            svc.metrics.revocation_propagation.observe(lag)

    async def run(self) -> None:
        """Follow the log until cancelled; store outages are counted, logged and retried."""
        bus = self.svc.events
        while True:
            generation = bus.generation
            try:
                await self.catch_up()
            except StoreUnavailable as exc:
                self.svc.metrics.count_store_error(exc)
                log.warning("event follower: %s; retrying", exc)
                await asyncio.sleep(self.retry_delay)
                continue
            except Exception:
                # A bug must not end following for good (the lag gauge would then grow
                # forever without an explanation): log it with its traceback and retry.
                # Closed meanwhile: the cursor only passes events already applied, so the
                # retry re-reads the one that failed, and no session check relies on this
                # deny list (checks read the session store).
                log.exception("event follower round failed; retrying")
                await asyncio.sleep(self.retry_delay)
                continue
            await bus.wait(generation, max_wait=MAX_WAIT)


async def follow_events(svc: Services) -> None:
    """Run an :class:`EventFollower` for ``svc`` until cancelled (a background task)."""
    await EventFollower(svc).run()
