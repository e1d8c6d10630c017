"""Run the example RP: ``RP_CLIENT_SECRET=… python -m examples.rp --issuer … --client-id …``."""

from __future__ import annotations

import argparse
import os
from urllib.parse import urlsplit

import uvicorn
from examples.rp.app import RPConfig, create_rp


def main() -> None:
    """Parse flags and serve."""
    p = argparse.ArgumentParser(prog="python -m examples.rp")
    p.add_argument("--issuer", required=True)
    p.add_argument("--client-id", required=True)
    # The secret comes from the environment by default: a command line is visible to every
    # user of the machine (ps), and a generated secret may begin with "-", which argparse
    # would read as a flag.
    p.add_argument("--client-secret", default=os.environ.get("RP_CLIENT_SECRET"))
    p.add_argument("--base-url", default="http://127.0.0.1:8001")
    a = p.parse_args()
    if not a.client_secret:
        p.error("set RP_CLIENT_SECRET (or pass --client-secret=…)")
    port = urlsplit(a.base_url).port or 8001
    app = create_rp(RPConfig(a.issuer, a.client_id, a.client_secret, a.base_url))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
