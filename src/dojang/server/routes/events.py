"""``GET /events/revocations``: the signed revocation feed as Server-Sent Events.

Format and resume rules: ``dojang.events.feed``. Readable without credentials, like the JWKS:
every frame is a SET (RFC 8417) carrying only opaque ids and signed by the issuer, so the feed
reveals nothing personal and cannot be spoofed by whoever relays it.

Bounded by construction: at most ``FeedOptions.max_streams`` streams per process (503 with
``Retry-After`` beyond), no per-client queue (each stream reads the log from its own cursor),
and a client whose socket stops draining for ``send_timeout`` seconds is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import APIRouter, Header, Query
from starlette.requests import Request
from starlette.responses import Response

from dojang.events.feed import FeedOptions, feed_frames
from dojang.server.context import services
from dojang.server.responses import HTTPError
from dojang.server.types import Message, Receive, Scope, Send

router = APIRouter(tags=["events"])
log = logging.getLogger("dojang.server")

_MAX_SEQ = 2**62


class _Streams:
    """Per-application stream accounting (kept on ``app.state``)."""

    def __init__(self, options: FeedOptions) -> None:
        self.options = options
        self.open = 0


def _streams(request: Request) -> _Streams:
    state = request.app.state
    streams: _Streams | None = getattr(state, "event_streams", None)
    if streams is None:
        options = getattr(state, "event_feed", None)
        streams = _Streams(options if isinstance(options, FeedOptions) else FeedOptions())
        state.event_streams = streams
    return streams


class EventStreamResponse(Response):
    """A ``text/event-stream`` response that ends on disconnect or on a stalled write."""

    media_type = "text/event-stream"

    def __init__(
        self, frames: AsyncIterator[bytes], *, send_timeout: float, on_close: Callable[[], None]
    ) -> None:
        super().__init__(
            status_code=200,
            headers={
                "cache-control": "no-cache, no-store",
                # nginx would otherwise buffer the stream and delay every revocation.
                "x-accel-buffering": "no",
            },
            media_type=self.media_type,
        )
        # A stream has no length: drop the Content-Length: 0 that an empty body implies.
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self._frames = frames
        self._send_timeout = send_timeout
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def stream() -> None:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async for frame in self._frames:
                # A client that stops reading would otherwise hold this task forever.
                async with asyncio.timeout(self._send_timeout):
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def disconnected() -> None:
            while True:
                message: Message = await receive()
                if message["type"] == "http.disconnect":
                    return

        writer = asyncio.ensure_future(stream())
        watcher = asyncio.ensure_future(disconnected())
        try:
            await asyncio.wait({writer, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (writer, watcher):
                task.cancel()
            outcome = await asyncio.gather(writer, watcher, return_exceptions=True)
            failure = outcome[0]
            if isinstance(failure, Exception):
                # A store error or a stalled client after the response started: the client
                # reconnects with Last-Event-ID and loses nothing; a log line, not a 500.
                log.info("event stream closed: %s", type(failure).__name__)
            with contextlib.suppress(Exception):
                await self._frames.aclose()  # type: ignore[attr-defined]
            self._on_close()


@router.get(
    "/events/revocations",
    response_class=Response,
    responses={
        200: {
            "description": "Server-Sent Events: one signed SET per revocation, heartbeats",
            "content": {"text/event-stream": {}},
        }
    },
)
async def revocation_feed(
    request: Request,
    since: int | None = Query(
        None, ge=0, le=_MAX_SEQ, description="Resume after this id (Last-Event-ID wins)."
    ),
    last_event_id: Annotated[str | None, Header(alias="last-event-id")] = None,
) -> Response:
    """Server-Sent Events: every revocation as a signed SET, resumable by ``Last-Event-ID``."""
    after = since or 0
    if last_event_id is not None and last_event_id.strip():
        value = last_event_id.strip()
        if not value.isdigit() or len(value) > 19 or int(value) > _MAX_SEQ:
            raise HTTPError(400, "invalid_request", "Last-Event-ID must be a decimal event id")
        after = int(value)
    svc = services(request)
    streams = _streams(request)
    if streams.open >= streams.options.max_streams:
        raise HTTPError(
            503, "too_many_streams", "too many event streams; retry later", {"retry-after": "5"}
        )
    streams.open += 1

    def release() -> None:
        streams.open -= 1

    frames = feed_frames(svc.events, after, options=streams.options, now=svc.clock.now)
    return EventStreamResponse(frames, send_timeout=streams.options.send_timeout, on_close=release)
