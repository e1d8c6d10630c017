"""``GET /api/v1/revocations``: the revocation snapshot a verifier resyncs from.

Readable without credentials, like the JWKS: it carries only opaque ids (sid, jti, sub) and
expiry times, never personal data or tokens.
"""

from __future__ import annotations

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from dojang.server.context import services
from dojang.server.responses import json_ok

router = APIRouter(prefix="/api/v1", tags=["revocations"])
PAGE = 1000


@router.get("/revocations")
async def snapshot(
    request: Request,
    since: int = Query(0, ge=0, le=2**62, description="Return events after this id."),
) -> Response:
    """Unexpired revocation events after ``since``, oldest first, at most 1000 per page.

    ``last_id`` is where the next call resumes; ``more`` says whether another page follows.
    """
    svc = services(request)
    events = await svc.events.since(since, now=svc.clock.now(), limit=PAGE + 1)
    more = len(events) > PAGE
    page = events[:PAGE]
    last = page[-1].id if page else max(since, 0)
    return json_ok({"events": [e.as_dict() for e in page], "last_id": last, "more": more})
