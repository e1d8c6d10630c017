"""The ``/auth/check`` ceiling: a Starlette app whose one route does no work at all.

Served exactly like ``dojang serve`` serves dojang (uvicorn, one worker, ``uvloop`` +
``httptools``, access log off, no ``Server`` header, no proxy headers), so the difference in
requests/s between the two is what dojang's session check costs.

Run: ``python -m bench.ceiling_app --port 18081`` (loopback only).
"""

from __future__ import annotations

import argparse

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def check(request: Request) -> Response:
    """Empty 200: the cheapest answer the framework can give."""
    return Response(status_code=200)


app = Starlette(routes=[Route("/auth/check", check)])


def main(argv: list[str] | None = None) -> None:
    """Serve ``app`` on 127.0.0.1 with dojang's uvicorn settings."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        workers=1,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
