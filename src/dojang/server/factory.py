"""ASGI factory for multi-worker serving: each worker builds its app from the environment."""

from __future__ import annotations

from dojang.config import load_settings
from dojang.server.app import DojangApp, create_app


def app_from_env() -> DojangApp:
    """Build the application from ``DOJANG_*`` settings (used by ``uvicorn --factory``)."""
    return create_app(load_settings())
