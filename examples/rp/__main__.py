"""Run the example RP with uvicorn: ``python -m examples.rp --issuer … --client-id … ``."""

from __future__ import annotations

import argparse
from urllib.parse import urlsplit

import uvicorn
from examples.rp.app import RPConfig, create_rp


def main() -> None:
    """Parse flags and serve."""
    p = argparse.ArgumentParser(prog="python -m examples.rp")
    p.add_argument("--issuer", required=True)
    p.add_argument("--client-id", required=True)
    p.add_argument("--client-secret", required=True)
    p.add_argument("--base-url", default="http://127.0.0.1:8001")
    a = p.parse_args()
    port = urlsplit(a.base_url).port or 8001
    app = create_rp(RPConfig(a.issuer, a.client_id, a.client_secret, a.base_url))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
