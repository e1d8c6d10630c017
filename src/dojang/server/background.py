"""Background tasks of a serving process, started and stopped with the app's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from dojang.oidc import logout as oidc_logout
from dojang.server.follower import follow_events
from dojang.server.housekeeping import run_housekeeping
from dojang.server.keywatch import watch_keys
from dojang.server.services import Services


@contextlib.asynccontextmanager
async def background_tasks(svc: Services) -> AsyncIterator[None]:
    """Run key reloading, the event-log follower, back-channel logout delivery and
    housekeeping while the block runs."""
    tasks = [
        asyncio.create_task(watch_keys(svc), name="dojang-keywatch"),
        asyncio.create_task(follow_events(svc), name="dojang-event-follower"),
        asyncio.create_task(oidc_logout.run_worker(svc), name="dojang-backchannel-logout"),
        asyncio.create_task(run_housekeeping(svc), name="dojang-housekeeping"),
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
