"""``python -m dojang.oidc drain``: deliver pending back-channel logout notifications.

Also sweeps for client-held sessions that ended without notice (expired, or ended by a
process without the hook). Safe to run from cron or beside ``dojang serve``.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from dojang.config import load_settings
from dojang.oidc.logout import DrainResult, drain, sweep
from dojang.server.services import build_services


async def _drain(data_dir: Path | None, public_url: str | None) -> DrainResult:
    flags: dict[str, object] = {}
    if data_dir is not None:
        flags["data_dir"] = data_dir
    if public_url is not None:
        flags["public_url"] = public_url  # the logout tokens' iss must be the server's
    svc = await build_services(load_settings(flags))
    try:
        swept = await sweep(svc)
        rest = await drain(svc)
    finally:
        await svc.close()
    return DrainResult(
        swept.delivered + rest.delivered, swept.retrying + rest.retrying, swept.failed + rest.failed
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point; prints one summary line."""
    parser = argparse.ArgumentParser(prog="python -m dojang.oidc")
    parser.add_argument("command", choices=["drain"])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--public-url", default=None, help="as for dojang serve")
    args = parser.parse_args(argv)
    result = asyncio.run(_drain(args.data_dir, args.public_url))
    print(f"delivered={result.delivered} retrying={result.retrying} failed={result.failed}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
