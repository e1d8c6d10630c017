"""Where the verifier's keys come from: a fixed key set, or a JWKS URL fetched with care.

Remote JWKS rules (RFC 8725 §3.10 threat model; the URL is configuration, never token input):

* https only, except plain http to a loopback address for development;
* no redirects (a redirect could move key discovery to a host the operator never named),
  short timeouts, a response size cap, status 200 only;
* one overall deadline per fetch (connect, headers and body together), not only per-phase
  timeouts: a per-read timeout restarts with every byte, so an endpoint that drips one byte
  per second (or accepts and never answers) would otherwise hold verification indefinitely;
* the document is parsed strictly and imported entry by entry through ``KeySet.from_jwks``, so
  one hostile entry (``oct`` key, weak RSA, wrong curve) is skipped, not fatal;
* an unknown ``kid`` triggers at most one fetch per cooldown window, shared by every concurrent
  caller (no refetch storm when an attacker sprays random ``kid`` values), and is never answered
  by "try every key";
* when the endpoint fails, the last good keys keep working for ``max_stale`` seconds after their
  last successful fetch; after that every verification fails closed with KeysUnavailable.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import threading
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit

import httpx

from dojang.clock import Clock
from dojang.errors import ConfigError, DojangError, KeysUnavailable
from dojang.jose import Key, KeySet, parse_json_object

__all__ = ["MAX_JWKS_BYTES", "REFRESH_AFTER", "RemoteJwks", "StaticKeys", "check_jwks_url"]

MAX_JWKS_BYTES: Final = 256 * 1024
# Keys older than this are refreshed in the background of the next verification, so retired
# keys drop out and new ones arrive even when no unknown kid forces a fetch.
REFRESH_AFTER: Final = 300.0

# How much longer than the deadline a caller waits for a fetch run elsewhere (another thread,
# another caller) to report, so scheduling delays do not turn a completed fetch into a failure.
_JOIN_SLACK: Final = 0.25

_log = logging.getLogger("dojang.security")
_LOOPBACK_NAMES = frozenset({"localhost"})


def check_jwks_url(url: str) -> str | None:
    """Return a problem description if ``url`` is not an acceptable JWKS URL, else None."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "jwks: not a valid URL"
    if not host:
        return "jwks: URL has no host"
    if parts.username is not None or parts.password is not None:
        return "jwks: URL must not carry credentials"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http":
        if host in _LOOPBACK_NAMES:
            return None
        try:
            if ipaddress.ip_address(host).is_loopback:
                return None
        except ValueError:
            pass
        return "jwks: plain http is only allowed to a loopback address; use https"
    return f"jwks: unsupported URL scheme {parts.scheme!r:.20}; use https"


class StaticKeys:
    """A fixed key set given at construction (a JWKS mapping or a KeySet)."""

    def __init__(self, keys: KeySet) -> None:
        self.keyset = keys

    def current(self) -> KeySet:
        """Return the key set (never stale)."""
        return self.keyset


class _FetchFailed(Exception):
    """The endpoint did not yield a usable key set; the message is for the security log."""


class _Inflight:
    """One fetch in progress that later callers wait for instead of fetching again."""

    __slots__ = ("done", "loop", "task")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task: asyncio.Task[None] | None = None


class RemoteJwks:
    """A JWKS URL with caching, cooldown, staleness limit and single-flight fetching.

    ``timeout`` bounds each HTTP phase; ``deadline`` (default: ``timeout``) bounds a whole
    fetch. A fetch that misses it counts as a failed fetch: the last good keys stay in use
    within ``max_stale``, otherwise verification fails closed with KeysUnavailable.
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Clock,
        cooldown: float,
        max_stale: float,
        timeout: float,
        deadline: float | None = None,
        max_bytes: int = MAX_JWKS_BYTES,
    ) -> None:
        problem = check_jwks_url(url)
        if problem is not None:
            raise ConfigError(problem)
        self.url = url
        self._clock = clock
        self._cooldown = cooldown
        self._max_stale = max_stale
        self._refresh_after = min(REFRESH_AFTER, max_stale)
        self._timeout = timeout
        self._deadline = timeout if deadline is None else deadline
        self._max_bytes = max_bytes
        # (keys, time of the last successful fetch); replaced as one tuple so readers on other
        # threads never see keys from one fetch with the timestamp of another.
        self._state: tuple[KeySet | None, float] = (None, 0.0)
        self._last_attempt: float | None = None
        self._lock = threading.Lock()
        self._inflight: _Inflight | None = None
        self.fetch_count = 0

    # -- lookups ---------------------------------------------------------------------------

    def lookup(self, kid: str) -> Key | None:
        """Return the key for ``kid`` if the cached keys are fresh and hold it, else None."""
        keys, fetched = self._state
        if keys is None or kid not in keys or self._clock.now() - fetched > self._refresh_after:
            return None
        return keys.get(kid)

    def final(self) -> KeySet:
        """Return the cached keys if still within ``max_stale``; raise KeysUnavailable otherwise."""
        keys, fetched = self._state
        if keys is None:
            raise KeysUnavailable("no verification keys could be fetched from the JWKS URL")
        if self._clock.now() - fetched > self._max_stale:
            raise KeysUnavailable("verification keys are stale and the JWKS URL is failing")
        return keys

    # -- claiming a fetch ------------------------------------------------------------------

    def _claim(self) -> tuple[_Inflight | None, bool]:
        """Return (in-flight fetch, True if the caller must run it) under the cooldown rule."""
        with self._lock:
            if self._inflight is not None:
                return self._inflight, False
            now = self._clock.now()
            if self._last_attempt is not None and now - self._last_attempt < self._cooldown:
                return None, False
            self._last_attempt = now
            self._inflight = _Inflight()
            return self._inflight, True

    def _finish(self, inflight: _Inflight) -> None:
        with self._lock:
            self._inflight = None
        inflight.done.set()

    def _apply(self, body: bytes) -> None:
        doc = parse_json_object(body, "JWKS")
        keys = KeySet.from_jwks(doc)
        for reason in getattr(keys, "rejected", ()):
            _log.warning("JWKS %s: skipped an entry: %s", self.url, reason)
        if len(keys) == 0:
            raise _FetchFailed("document holds no usable key")
        self._state = (keys, self._clock.now())
        self.fetch_count += 1

    def _log_failure(self, exc: BaseException) -> None:
        keys, fetched = self._state
        age = (
            "none cached" if keys is None else f"cached keys {self._clock.now() - fetched:.0f}s old"
        )
        _log.warning("JWKS fetch from %s failed (%s): %s", self.url, age, exc)

    # -- sync ------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Fetch now if the cooldown allows, or wait for a fetch already in flight."""
        inflight, mine = self._claim()
        if inflight is None:
            return
        if not mine:
            inflight.done.wait(self._deadline + _JOIN_SLACK)
            return
        try:
            self._apply(self._fetch_sync())
        except (_FetchFailed, httpx.HTTPError, DojangError, ValueError) as exc:
            self._log_failure(exc)
        finally:
            self._finish(inflight)

    def _fetch_sync(self) -> bytes:
        # A blocking socket read cannot be given a deadline that spans many reads, so the
        # fetch runs as the async one (whose deadline cancels it, closing the connection) on a
        # short-lived thread with its own loop: one fetch per cooldown window at most, and
        # safe even when the caller itself runs inside an event loop.
        outcome: list[bytes | Exception] = []

        def run() -> None:
            try:
                outcome.append(asyncio.run(self._fetch_async()))
            except Exception as exc:  # handed to the caller below, which decides
                outcome.append(exc)

        worker = threading.Thread(target=run, name="dojang-jwks-fetch", daemon=True)
        worker.start()
        worker.join(self._deadline + _JOIN_SLACK)
        if not outcome:
            raise _FetchFailed(f"no complete answer within {self._deadline:g}s")
        result = outcome[0]
        if isinstance(result, Exception):
            raise result
        return result

    # -- async -----------------------------------------------------------------------------

    async def arefresh(self) -> None:
        """Async twin of ``refresh``: concurrent callers share one fetch."""
        inflight, mine = self._claim()
        if inflight is None:
            return
        loop = asyncio.get_running_loop()
        if mine:
            inflight.loop = loop
            inflight.task = loop.create_task(self._arun(inflight))
        task = inflight.task
        if task is not None and inflight.loop is loop:
            # shield: a cancelled caller must not cancel the fetch the others are waiting on.
            await asyncio.shield(task)
        else:  # a fetch started by a sync caller or on another loop: wait without blocking
            await asyncio.to_thread(inflight.done.wait, self._deadline + _JOIN_SLACK)

    async def _arun(self, inflight: _Inflight) -> None:
        try:
            self._apply(await self._fetch_async())
        except (_FetchFailed, httpx.HTTPError, DojangError, ValueError) as exc:
            self._log_failure(exc)
        finally:
            self._finish(inflight)

    async def _fetch_async(self) -> bytes:
        try:
            async with asyncio.timeout(self._deadline):
                return await self._get_async()
        except TimeoutError:
            raise _FetchFailed(f"no complete answer within {self._deadline:g}s") from None

    async def _get_async(self) -> bytes:
        async with (
            httpx.AsyncClient(timeout=self._timeout, follow_redirects=False) as client,
            client.stream("GET", self.url, headers={"Accept": "application/json"}) as resp,
        ):
            self._check_response(resp)
            body = bytearray()
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > self._max_bytes:
                    raise _FetchFailed(f"response larger than {self._max_bytes} bytes")
            return bytes(body)

    def _check_response(self, resp: httpx.Response) -> None:
        if resp.status_code != 200:
            # Redirects land here too (follow_redirects=False): key discovery stays on the
            # configured URL.
            raise _FetchFailed(f"HTTP status {resp.status_code}")
        length = resp.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self._max_bytes):
            raise _FetchFailed("Content-Length missing a sane value or over the cap")


def static_keys(jwks: Mapping[str, object] | KeySet) -> StaticKeys:
    """Wrap a JWKS mapping or KeySet given in configuration."""
    if isinstance(jwks, KeySet):
        return StaticKeys(jwks)
    keys = KeySet.from_jwks(jwks)
    if len(keys) == 0:
        raise ConfigError("jwks: the key set holds no usable key")
    return StaticKeys(keys)
