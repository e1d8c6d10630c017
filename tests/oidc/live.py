"""A real loopback HTTP server (uvicorn) for the example RP, inside the test's event loop."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from starlette.types import ASGIApp

START_DEADLINE = 10.0


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@asynccontextmanager
async def serve(app: ASGIApp, port: int) -> AsyncIterator[None]:
    """Serve ``app`` on 127.0.0.1:``port`` until the block exits."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    deadline = asyncio.get_running_loop().time() + START_DEADLINE
    while not server.started:
        if task.done():
            task.result()
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("uvicorn did not start in time")
        await asyncio.sleep(0.01)  # poll to a deadline
    try:
        yield
    finally:
        server.should_exit = True
        await task
