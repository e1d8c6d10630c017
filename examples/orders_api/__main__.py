"""``python -m examples.orders_api``: serve the orders API with uvicorn (config from env)."""

from __future__ import annotations

import uvicorn
from examples.orders_api.app import Settings


def main() -> None:
    """Run on ``ORDERS_HOST``:``ORDERS_PORT`` (default 127.0.0.1:9000)."""
    settings = Settings.from_env()
    uvicorn.run("examples.orders_api.app:app", host=settings.host, port=settings.port)


if __name__ == "__main__":
    main()
