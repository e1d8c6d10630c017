"""Everything the routes need, built once at start-up from ``Settings`` and passed explicitly."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dojang.accounts.clients import Audience, ClientRegistry
from dojang.accounts.passwords import PasswordHasher
from dojang.accounts.throttle import Throttle
from dojang.accounts.throttle_redis import RedisLoginThrottle
from dojang.accounts.users import Accounts
from dojang.audit import AuditLog
from dojang.clock import SYSTEM_CLOCK, Clock
from dojang.config import MAX_ACCESS_TTL, Settings
from dojang.events import Event
from dojang.events.backends import open_event_bus
from dojang.events.bus import EventBus, EventSigner
from dojang.jose import KeySet
from dojang.oidc import logout as oidc_logout
from dojang.oidc.store import OIDCStore
from dojang.server.cookies import CookiePolicy
from dojang.server.metrics import Metrics
from dojang.server.netutil import Network, origin_of, parse_networks
from dojang.server.token_cache import TokenCache
from dojang.sessions.backends import open_session_store
from dojang.sessions.manager import SessionManager, SessionPolicy
from dojang.sessions.model import Session
from dojang.storage.db import Database
from dojang.storage.migrate import upgrade
from dojang.tokens import Issuer
from dojang.verify import DenyList, Verifier

log = logging.getLogger("dojang.server")

# Registering an audience takes effect on running servers within this many seconds.
AUDIENCE_CACHE_SECONDS = 30.0

TOKEN_HORIZON = float(MAX_ACCESS_TTL) + 60.0
"""How long a revocation event must be kept: the longest access token it can affect, plus
leeway (every event's ``exp`` is its creation time plus this)."""


@dataclass
class Services:
    """The long-lived objects of one dojang process."""

    settings: Settings
    db: Database
    sessions: SessionManager
    accounts: Accounts
    keyset: KeySet
    issuer: Issuer
    clock: Clock
    cookies: CookiePolicy
    trusted_proxies: tuple[Network, ...]
    public_origin: str
    revocations: DenyList
    clients: ClientRegistry
    audit: AuditLog
    metrics: Metrics
    events: EventBus
    _verifiers: dict[str, Verifier] = field(default_factory=dict)
    forward_tokens: TokenCache = field(default_factory=lambda: TokenCache())

    _audiences: dict[str, tuple[Audience | None, float]] = field(default_factory=dict)

    async def audience(self, name: str) -> Audience | None:
        """A registered audience, cached for ``AUDIENCE_CACHE_SECONDS`` (forward-auth path)."""
        now = self.clock.now()
        hit = self._audiences.get(name)
        if hit is not None and hit[1] > now:
            return hit[0]
        found = await self.clients.get_audience(name)
        if len(self._audiences) > 1024:
            self._audiences.clear()
        self._audiences[name] = (found, now + AUDIENCE_CACHE_SECONDS)
        return found

    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    oidc: OIDCStore = field(init=False)

    def __post_init__(self) -> None:
        # Long-lived: its refresh rotations are group-committed across requests.
        self.oidc = OIDCStore(self.db, self.clock)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` in the background, keeping a reference until it finishes."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    async def settle(self) -> None:
        """Wait for every background task started so far (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def publish(self, batch: list[Event]) -> None:
        """Publish revocation events (signed by the bus) and count them."""
        await self.events.append(batch)
        for ev in batch:
            self.metrics.revocations_published.labels(kind=ev.kind).inc()

    def replace_keys(self, keyset: KeySet) -> None:
        """Switch to a reloaded key set: new tokens use its active key, checks its keys.

        A key set loaded without a clock is given this process's clock, so the use-time
        expiry of retired keys follows the same time as everything else here.
        """
        if keyset.clock is None:
            keyset.clock = self.clock
        self.keyset = keyset
        self.issuer.keyset = keyset
        self._verifiers.clear()

    def verifier_for(self, audience: str) -> Verifier:
        """This server's own verifier for tokens addressed to ``audience`` (cached)."""
        verifier = self._verifiers.get(audience)
        if verifier is None:
            verifier = Verifier(
                issuer=self.settings.issuer,
                audience=audience,
                jwks=self.keyset,
                clock=self.clock,
                revocations=self.revocations,
            )
            if len(self._verifiers) > 1024:  # audiences are registered, but stay bounded
                self._verifiers.clear()
            self._verifiers[audience] = verifier
        return verifier

    async def close(self) -> None:
        """Finish background work, then release connections."""
        await self.settle()
        await self.events.close()
        await self.sessions.store.close()
        await self.accounts.throttle.close()
        await self.db.dispose()


def load_or_create_keys(settings: Settings, clock: Clock) -> KeySet:
    """Load ``keys.json`` (self-tested), or create it (mode 0600) on first run.

    The key set keeps ``clock``: a retired key stops verifying and drops out of the JWKS the
    moment its keep-until time passes, even before ``dojang keys purge`` rewrites the file.
    """
    path: Path = settings.keys_path
    if path.exists():
        return KeySet.load(path, clock=clock)
    keyset = KeySet.generate(settings.key_alg, now=clock.now(), clock=clock)
    # Publish the next key from the start, so verifiers already know it when it is promoted.
    keyset.add_next(now=clock.now())
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    keyset.save(path)
    log.info("created signing keys in %s", path)
    return keyset


async def build_services(
    settings: Settings, *, clock: Clock = SYSTEM_CLOCK, hasher: PasswordHasher | None = None
) -> Services:
    """Open the database (running migrations), the session store and the keys."""
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    db = Database(settings.effective_database_url)
    try:
        await upgrade(db)
        store = open_session_store(settings.session_store, db)
        revocations = DenyList(clock=clock)
        # Every revocation must outlive the longest token it can affect (plus leeway).
        token_horizon = TOKEN_HORIZON

        forward_tokens = TokenCache()
        metrics = Metrics()

        # Every event is signed as a SET (RFC 8417) with the key that signs tokens right now;
        # the lambda follows live key reloads (``replace_keys`` swaps ``issuer.keyset``).
        events = open_event_bus(
            settings.event_bus,
            db=db,
            signer=EventSigner(lambda: issuer.keyset, issuer=settings.issuer),
            clock=clock,
            retention=token_horizon,
        )

        built: list[Services] = []  # filled below; on_revoke runs only after start-up

        async def publish(batch: list[Event]) -> None:
            # Hooks fire only once the services exist (after start-up).
            await built[0].publish(batch)

        async def on_revoke(sessions: list[Session]) -> None:
            # Tokens minted from an ended session die with it here at once, and the event log
            # carries the same fact to other processes and subscribers.
            now = clock.now()
            exp = now + token_horizon
            for ended in sessions:
                revocations.add_sid(ended.sid, exp=exp)
                forward_tokens.drop_session(ended.sid)
            await publish([Event("session.revoked", {"sid": s.sid}, exp, now) for s in sessions])
            if built:
                # OIDC back-channel logout: every client holding one of these sessions hears.
                # In the background, so a slow or unreachable client never delays a logout
                # (failed deliveries are recorded and retried by the worker).
                built[0].spawn(oidc_logout.on_sessions_ended(built[0], sessions))

        manager = SessionManager(
            store,
            SessionPolicy(
                idle_timeout=settings.session_idle_timeout,
                absolute_lifetime=settings.session_absolute_lifetime,
                remember_me_lifetime=settings.session_remember_me_lifetime,
                remember_me_idle=settings.session_remember_me_idle,
                touch_interval=settings.session_touch_interval,
                max_data_bytes=settings.session_max_data_bytes,
            ),
            clock=clock,
            on_revoke=on_revoke,
        )
        hasher = hasher or PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_cost,
            parallelism=settings.argon2_parallelism,
        )

        async def end_all_sessions(user_id: str) -> None:
            # A password change or a disabled account ends every session of that user, and
            # every token issued to them before now (service tokens included).
            await manager.revoke_all(user_id)
            now = clock.now()
            revocations.revoke_user_before(user_id, now, exp=now + token_horizon)
            await publish(
                [
                    Event(
                        "user.sessions_revoked",
                        {"sub": user_id, "before": now},
                        now + token_horizon,
                        now,
                    )
                ]
            )

        throttle: Throttle | None = None
        if settings.session_store.startswith("redis"):
            # Sessions in Redis means several instances: throttle counters must be shared too.
            throttle = RedisLoginThrottle.from_url(
                settings.session_store, option="DOJANG_SESSION_STORE", clock=clock
            )
        accounts = Accounts(
            db,
            hasher=hasher,
            throttle=throttle,
            clock=clock,
            on_password_change=end_all_sessions,
            on_disable=end_all_sessions,
        )
        keyset = load_or_create_keys(settings, clock)
        issuer = Issuer(
            keyset, issuer=settings.issuer, clock=clock, access_ttl=settings.access_token_ttl
        )
    except BaseException:
        await db.dispose()
        raise
    services = Services(
        settings=settings,
        db=db,
        sessions=manager,
        accounts=accounts,
        keyset=keyset,
        issuer=issuer,
        clock=clock,
        cookies=CookiePolicy(https=settings.is_https),
        trusted_proxies=parse_networks(settings.trusted_proxies),
        public_origin=origin_of(settings.public_url),
        revocations=revocations,
        clients=ClientRegistry(db, clock=clock),
        audit=AuditLog(db, clock=clock, on_record=metrics.on_audit),
        metrics=metrics,
        events=events,
        forward_tokens=forward_tokens,
    )
    built.append(services)
    return services
