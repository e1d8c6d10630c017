"""Push revocation for business servers: a ``RevocationView`` fed by the issuer's event feed.

``Verifier(revocations="https://auth.example/events/revocations")`` (SSE) or
``Verifier(revocations="redis://host:6379/0?stream=dojang:events")`` (Redis Streams) builds a
``Subscription``: a daemon thread running its own event loop keeps a ``DenyList`` fed, so
``verify`` (sync) and ``averify`` (async) read the same in-memory sets without any I/O.

Every event arrives as a SET (RFC 8417, ``typ: secevent+jwt``) and is verified with the
Verifier's own JWKS and issuer before it is applied: whoever can merely write to Redis or sit
between the feed and us can neither forge nor undo a revocation. Anything that fails the check
is logged to ``dojang.security`` (never the token itself) and skipped; the subscriber goes on.

Trust rules (fail closed, DESIGN.md "Revocation events"):

* Until the first full resync has completed, and after a *known* gap (a ``reset`` event, a
  heartbeat whose ``latest`` is behind what we hold, a stream that lost or trimmed entries we had
  not read), ``is_revoked`` raises ``RevocationsUnavailable`` until a full resync succeeds.
* A full resync pages ``GET <origin>/api/v1/revocations?since=`` (SSE) or reads the whole
  stream (Redis, the same log the snapshot serves) and is also done after every reconnect
  caused by missed heartbeats.
* Out of touch (no event, heartbeat or successful read) for longer than ``max_stale`` seconds
  (default: the longest access-token lifetime, 900 s) → ``RevocationsUnavailable``: beyond
  that, a revocation we missed could cover a token that is still valid.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import threading
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import httpx
from httpx_sse import SSEError, aconnect_sse
from redis.exceptions import RedisError

from dojang.clock import Clock
from dojang.errors import ConfigError, DojangError, InvalidToken, KeysUnavailable
from dojang.events.model import Event
from dojang.events.secevent import verify_set
from dojang.jose import Key, decode_segments
from dojang.verify.jwks import RemoteJwks, StaticKeys, check_jwks_url
from dojang.verify.revocation import DenyList

__all__ = [
    "RedisSubscription",
    "RevocationsUnavailable",
    "SseSubscription",
    "Subscription",
    "subscribe",
]

_log = logging.getLogger("dojang.security")
_info = logging.getLogger("dojang.verify")
_SNAPSHOT_PATH: Final = "/api/v1/revocations"
_MAX_SNAPSHOT_PAGES: Final = 10_000


class RevocationsUnavailable(InvalidToken):
    """The revocation feed is out of touch or not yet in sync; tokens are refused meanwhile."""

    code = "revocations_unavailable"


class _Gap(Exception):
    """The subscriber may have missed events: resync before trusting itself again."""


class Subscription:
    """Base class: the thread, the deny list, the trust state and SET checking.

    Subclasses implement ``_resync`` (full state) and ``_follow`` (stream until error).
    """

    def __init__(
        self,
        *,
        keys: StaticKeys | RemoteJwks,
        issuer: str,
        algorithms: Collection[str],
        clock: Clock,
        max_stale: float = 900.0,
        heartbeat_timeout: float = 45.0,
        reconnect_delay: float = 0.5,
        timeout: float = 3.0,
    ) -> None:
        self.deny = DenyList(clock=clock)
        # Called with the propagation lag (seconds from the SET's iat to applying it) of every
        # event that arrives live, not through a resync; the metrics hook sets it.
        self.on_live_event: Callable[[float], None] | None = None
        self._keys = keys
        self._issuer = issuer
        self._algorithms = frozenset(algorithms)
        self._clock = clock
        self.max_stale = float(max_stale)
        self.heartbeat_timeout = float(heartbeat_timeout)
        self.reconnect_delay = float(reconnect_delay)
        self.timeout = float(timeout)
        self._in_sync = False
        self._contact = -float("inf")
        self._need_resync = True
        self._synced = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self.applied = 0
        self.rejected = 0
        self.resyncs = 0

    # -- RevocationView --------------------------------------------------------------------

    def is_revoked(self, claims: Mapping[str, Any]) -> bool:
        """The DenyList's answer, or RevocationsUnavailable when it cannot be trusted."""
        self.check()
        return self.deny.is_revoked(claims)

    def is_key_retired(self, kid: str) -> bool:
        """True once a ``key.retired`` event named ``kid``: its tokens are refused at once.

        No trust check here: ``is_revoked`` runs for every token that gets further and fails
        closed while the feed is out of sync, and a stale "retired" only ever denies.
        """
        return self.deny.is_key_retired(kid)

    def check(self) -> None:
        """Raise RevocationsUnavailable unless in sync and in touch within ``max_stale``."""
        if not self._in_sync:
            raise RevocationsUnavailable("revocation feed not synchronized yet")
        if self._clock.now() - self._contact > self.max_stale:
            raise RevocationsUnavailable("revocation feed out of touch for too long")

    @property
    def in_sync(self) -> bool:
        """True once a full resync completed and no known gap has happened since."""
        return self._in_sync

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background thread (idempotent)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._thread_main, name="dojang-revocations", daemon=True
        )
        self._thread.start()

    def wait_synced(self, timeout: float) -> bool:
        """Block until the first full resync completed (or ``timeout``); return whether it did."""
        return self._synced.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread and wait for it (the deny list stays readable, but untrusted)."""
        self._stopping.set()
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(task.cancel)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._in_sync = False

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._task = loop.create_task(self._run())
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(self._task)
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._connect_and_follow()
            except asyncio.CancelledError:
                raise
            except _Gap as gap:
                _info.warning("revocation feed gap (%s); resyncing", gap)
                self._in_sync = False
                self._need_resync = True
                continue
            except (OSError, RedisError, httpx.HTTPError, SSEError, DojangError, ValueError) as exc:
                _info.warning("revocation feed: %s; reconnecting", type(exc).__name__)
            except Exception as exc:  # never let the thread die: a dead feed fails closed anyway
                _log.error("revocation feed: unexpected %s; reconnecting", type(exc).__name__)
            await asyncio.sleep(self.reconnect_delay)

    async def _connect_and_follow(self) -> None:
        raise NotImplementedError

    # -- applying events -------------------------------------------------------------------

    def _touch(self) -> None:
        self._contact = self._clock.now()

    def _resynced(self) -> None:
        self._need_resync = False
        self._in_sync = True
        self.resyncs += 1
        self._touch()
        self._synced.set()

    async def _warm_keys(self) -> None:
        """Fetch the JWKS now if none is cached, so events can be checked even if the issuer
        goes away right after publishing them."""
        keys = self._keys
        if isinstance(keys, RemoteJwks):
            try:
                keys.final()
            except KeysUnavailable:
                await keys.arefresh()

    async def _key_for(self, token: str) -> Key:
        kid = decode_segments(token)[0].get("kid")
        if type(kid) is not str:
            raise InvalidToken("SET header has no kid")
        keys = self._keys
        if isinstance(keys, StaticKeys):
            return keys.keyset.get(kid, now=self._clock.now())
        found = keys.lookup(kid)
        if found is None:
            await keys.arefresh()  # an event signed by a freshly rotated key
            found = keys.final().get(kid)
        return found

    async def _apply_set(self, token: str, where: str, *, live: bool = True) -> Event | None:
        """Verify and apply one SET; log and skip anything that is not genuine."""
        try:
            key = await self._key_for(token)
            event = verify_set(token, key, issuer=self._issuer, algorithms=self._algorithms)
        except KeysUnavailable:
            # We cannot judge the event right now (JWKS unreachable): skipping it could lose a
            # genuine revocation, so the caller reconnects and retries from this position.
            raise
        except InvalidToken as exc:
            self.rejected += 1
            # The reason only: the token could be attacker-controlled text.
            _log.warning("ignored a revocation event from %s: %s (%s)", where, exc.code, exc)
            return None
        self._apply(event)
        if live and self.on_live_event is not None:
            self.on_live_event(max(0.0, self._clock.now() - event.created_at))
        return event

    def _apply(self, event: Event) -> None:
        data = event.data
        if event.kind == "session.revoked":
            self.deny.add_sid(data["sid"], event.exp)
        elif event.kind == "token.revoked":
            self.deny.add_jti(data["jti"], event.exp)
        elif event.kind == "user.sessions_revoked":
            self.deny.revoke_user_before(data["sub"], float(data["before"]), event.exp)
        elif event.kind == "key.retired":
            # A key retired at once (compromised): the JWKS we hold, and caches between us and
            # the issuer, may list it for minutes more; refuse its tokens from now on.
            self.deny.add_kid(data["kid"], event.exp)
        self.applied += 1


class SseSubscription(Subscription):
    """Follows ``GET /events/revocations`` (SSE) and resyncs from ``GET /api/v1/revocations``."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.url = url
        parts = urlsplit(url)
        self.snapshot_url = urlunsplit((parts.scheme, parts.netloc, _SNAPSHOT_PATH, "", ""))
        self.cursor = 0

    async def _connect_and_follow(self) -> None:
        timeout = httpx.Timeout(self.timeout, read=self.heartbeat_timeout)
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            if self._need_resync:
                await self._resync(client)
            headers = {"Last-Event-ID": str(self.cursor), "Accept": "text/event-stream"}
            try:
                async with aconnect_sse(client, "GET", self.url, headers=headers) as source:
                    if source.response.status_code != 200:
                        raise httpx.HTTPStatusError(
                            f"status {source.response.status_code}",
                            request=source.response.request,
                            response=source.response,
                        )
                    async for sse in source.aiter_sse():
                        await self._on_sse(sse.event, sse.data, sse.id)
            except httpx.ReadTimeout:
                # Missed heartbeats: we may have been cut off silently; resync on reconnect.
                self._need_resync = True
                raise

    async def _on_sse(self, kind: str, data: str, sse_id: str) -> None:
        if kind == "reset":
            raise _Gap("the feed cannot resume from our position")
        seq = int(sse_id) if sse_id.isdigit() else None
        if kind == "heartbeat":
            latest = json.loads(data).get("latest") if data.startswith("{") else None
            if not isinstance(latest, int) or latest < self.cursor:
                # The server's log is behind what we hold: restored or replaced.
                raise _Gap("heartbeat behind our position")
            self.cursor = latest
            self._touch()
            return
        if seq is None:
            return  # not a revocation frame (comments and unknown events carry no id)
        if seq <= self.cursor:
            return  # a replay after reconnect
        await self._apply_set(data, "SSE feed")
        self.cursor = seq
        self._touch()

    async def _resync(self, client: httpx.AsyncClient) -> None:
        await self._warm_keys()
        since = 0
        for _ in range(_MAX_SNAPSHOT_PAGES):
            resp = await client.get(self.snapshot_url, params={"since": since})
            resp.raise_for_status()
            body = resp.json()
            for item in body.get("events", []):
                token = item.get("set") if isinstance(item, dict) else None
                if isinstance(token, str):
                    await self._apply_set(token, "snapshot", live=False)
            since = int(body["last_id"])
            if not body.get("more"):
                break
        # Our cursor may be ahead of an old snapshot only if the server's log went backwards.
        self.cursor = since
        self._resynced()


class RedisSubscription(Subscription):
    """Reads the Redis Stream directly (``XREAD BLOCK``), resuming from the last id seen."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from dojang.events.backends.redis import split_stream_url

        self._client_url, self.stream = split_stream_url(url)
        self.client_name = f"dojang-revocations-{secrets.token_hex(4)}"
        self.last_id = "0-0"
        self.block_ms = max(100, int(min(self.heartbeat_timeout / 3, 5.0) * 1000))

    async def _connect_and_follow(self) -> None:
        from redis.asyncio import Redis

        client: Redis = Redis.from_url(
            self._client_url,
            decode_responses=True,
            client_name=self.client_name,
            socket_connect_timeout=self.timeout,
            socket_timeout=self.block_ms / 1000 + self.timeout,
        )
        try:
            if self._need_resync:
                await self._resync(client)
            else:
                await self._check_gap(client)
            while True:
                reply = await client.xread(
                    {self.stream: self.last_id}, count=500, block=self.block_ms
                )
                self._touch()  # an answer, even empty, proves the link is alive
                for entry_id, fields in _entries(reply):
                    token = fields.get("set") if isinstance(fields, dict) else None
                    if isinstance(token, str):
                        await self._apply_set(token, f"stream {self.stream}")
                    else:
                        _log.warning("ignored a malformed entry in stream %s", self.stream)
                    self.last_id = entry_id
        finally:
            await client.aclose()

    async def _check_gap(self, client: Any) -> None:
        from redis.exceptions import ResponseError

        try:
            info = await client.xinfo_stream(self.stream)
        except ResponseError:
            if self.last_id != "0-0":
                raise _Gap("stream is gone") from None
            return
        if _id_key(str(info["last-generated-id"])) < _id_key(self.last_id):
            raise _Gap("stream is behind our position")
        deleted = str(info.get("max-deleted-entry-id") or "0-0")
        if _id_key(self.last_id) < _id_key(deleted):
            raise _Gap("entries after our position were trimmed")

    async def _resync(self, client: Any) -> None:
        from redis.exceptions import ResponseError

        await self._warm_keys()
        start = "-"
        try:
            info = await client.xinfo_stream(self.stream)
            newest = str(info["last-generated-id"])
        except ResponseError:
            newest = "0-0"
        while True:
            batch = await client.xrange(self.stream, start, "+", count=1000)
            for entry_id, fields in batch:
                token = fields.get("set") if isinstance(fields, dict) else None
                if isinstance(token, str):
                    await self._apply_set(token, f"stream {self.stream}", live=False)
                start = f"({entry_id}"
            if len(batch) < 1000:
                break
        last = start[1:] if start.startswith("(") else "0-0"
        self.last_id = max(last, newest, key=_id_key)
        self._resynced()


def _id_key(stream_id: str) -> tuple[int, int]:
    ms, _, n = stream_id.partition("-")
    return int(ms), int(n or 0)


def _entries(reply: Any) -> list[tuple[str, dict[str, str]]]:
    """XREAD's RESP2 reply (the protocol this client speaks) as one list of entries."""
    out: list[tuple[str, dict[str, str]]] = []
    for _name, entries in reply or []:
        out.extend((str(i), f) for i, f in entries)
    return out


def subscribe(
    url: str,
    *,
    keys: StaticKeys | RemoteJwks,
    issuer: str,
    algorithms: Collection[str],
    clock: Clock,
    max_stale: float,
    timeout: float,
) -> Subscription:
    """Build (not start) the subscription for ``url``: https SSE feed or ``redis://``."""
    scheme = url.split(":", 1)[0].lower()
    common: dict[str, Any] = {
        "keys": keys,
        "issuer": issuer,
        "algorithms": algorithms,
        "clock": clock,
        "max_stale": max_stale,
        "timeout": timeout,
    }
    if scheme in ("redis", "rediss"):
        return RedisSubscription(url, **common)
    problem = check_jwks_url(url)
    if problem is not None:
        raise ConfigError(problem.replace("jwks:", "revocations:", 1))
    return SseSubscription(url, **common)
