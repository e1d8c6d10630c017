"""The dojang ASGI application: pages, JSON API, forward auth, operations endpoints."""

from dojang.server.app import create_app

__all__ = ["create_app"]
