"""Operations endpoints: liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from dojang.errors import StoreUnavailable
from dojang.server.context import services
from dojang.server.metrics import is_forwarded, may_scrape
from dojang.server.responses import error_response, json_ok

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> Response:
    """The process is up and serving."""
    return json_ok({"status": "ok"})


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    """Every store answers: the database and the session store."""
    svc = services(request)
    checks: dict[str, str] = {}
    for name, probe in (("database", svc.db.ping), ("sessions", svc.sessions.store.ping)):
        try:
            await probe()
            checks[name] = "ok"
        except StoreUnavailable as exc:
            svc.metrics.count_store_error(exc)
            checks[name] = f"unavailable: {exc.message}"
    ready = all(v == "ok" for v in checks.values())
    return json_ok(
        {"status": "ready" if ready else "unavailable", "checks": checks}, 200 if ready else 503
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus metrics: loopback peers that are not a relaying proxy, or the
    ``DOJANG_METRICS_TOKEN`` bearer token."""
    svc = services(request)
    token = svc.settings.metrics_token
    peer = request.client.host if request.client else None
    if not may_scrape(
        peer,
        request.headers.get("authorization"),
        token.get_secret_value() if token else None,
        forwarded=is_forwarded(request.headers.keys()),
    ):
        return error_response(
            403,
            "forbidden",
            "metrics are not public",
            {"www-authenticate": 'Bearer realm="dojang-metrics"'},
        )
    try:
        live = await svc.sessions.store.count_live(svc.clock.now())
    except StoreUnavailable as exc:
        # The scrape still answers (the other metrics matter most during an outage); the
        # gauge says "unknown" rather than repeat an old count.
        svc.metrics.count_store_error(exc)
        live = None
    svc.metrics.active_sessions.set(float("nan") if live is None else live)
    return Response(
        svc.metrics.render(),
        media_type=svc.metrics.content_type,
        headers={"cache-control": "no-store"},
    )
