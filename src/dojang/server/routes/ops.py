"""Operations endpoints: liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from dojang.errors import StoreUnavailable
from dojang.server.context import services
from dojang.server.responses import json_ok

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
            checks[name] = f"unavailable: {exc.message}"
    ready = all(v == "ok" for v in checks.values())
    return json_ok(
        {"status": "ready" if ready else "unavailable", "checks": checks}, 200 if ready else 503
    )
