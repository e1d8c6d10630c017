"""Fixtures for the edge tests: dojang, the orders API and nginx as real loopback processes.

nginx (Debian's ``/usr/sbin/nginx``) and Chromium are system packages: without them these
tests skip with a loud reason, except in CI (``CI`` set), where their absence is a failure.

Playwright's sync API keeps an event loop running in this thread while it is alive, so every
browser fixture here is module-scoped and every browser test a plain function.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

from .harness import (
    NGINX,
    Dojang,
    Nginx,
    Proc,
    StartError,
    echo_server,
    free_port,
    start_dojang,
    start_nginx,
    start_orders_api,
)

CHROMIUM = os.environ.get("DOJANG_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps calling home, which floods a closed
# network and slows every launch.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _missing(what: str, hint: str) -> None:
    message = f"{what}: EDGE TESTS NOT RUN ({hint})"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@dataclass
class Edge:
    """The running stack. ``public`` is nginx in front of dojang and the orders API."""

    dojang: Dojang
    api: Proc
    api_url: str  # the orders API directly, bypassing nginx; it follows the revocation feed
    public: Nginx
    echo: Nginx  # the same config in front of a header-echo app instead of the API

    def diagnostics(self) -> str:
        """Process output and nginx logs, for failure messages."""
        return (
            f"--- dojang ---\n{self.dojang.proc.output()[-4000:]}\n"
            f"--- orders-api ---\n{self.api.output()[-4000:]}\n"
            f"--- nginx error.log ---\n{self.public.error_log()[-4000:]}"
        )


@pytest.fixture(scope="module")
def nginx_binary() -> str:
    """Debian's nginx; skipped loudly when absent, a failure in CI."""
    if not Path(NGINX).exists():
        _missing(f"nginx not found at {NGINX}", "apt-get install nginx, or set DOJANG_NGINX")
    return NGINX


@pytest.fixture(scope="module")
def edge(nginx_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    """dojang (public URL = nginx), the orders API, and two nginx instances from the template."""
    tmp = tmp_path_factory.mktemp("edge")
    nginx_port, echo_port, dojang_port, api_port = (free_port() for _ in range(4))
    public_url = f"http://127.0.0.1:{nginx_port}"
    started: list[Proc] = []
    try:
        with echo_server() as echo_upstream:
            try:
                dojang = start_dojang(tmp, dojang_port, public_url)
                started.append(dojang.proc)
                # The API fetches the JWKS from dojang directly (the issuer is the public URL)
                # and, by default, follows the revocation feed beside it.
                api = start_orders_api(api_port, public_url, f"{dojang.url}/.well-known/jwks.json")
                started.append(api)
                upstream = f"127.0.0.1:{dojang_port}"
                public = start_nginx(
                    tmp / "nginx", nginx_port, dojang=upstream, app=f"127.0.0.1:{api_port}"
                )
                started.append(public.proc)
                echo = start_nginx(
                    tmp / "nginx-echo", echo_port, dojang=upstream, app=echo_upstream
                )
                started.append(echo.proc)
            except StartError as exc:
                pytest.fail(str(exc), pytrace=False)
            yield Edge(dojang, api, f"http://127.0.0.1:{api_port}", public, echo)
    finally:
        for proc in reversed(started):
            proc.stop()


@pytest.fixture
def http(edge: Edge) -> Iterator[httpx.Client]:
    """A client of the public origin (nginx) that does not follow redirects."""
    with httpx.Client(base_url=edge.public.url, trust_env=False, timeout=10.0) as client:
        yield client


@pytest.fixture(scope="module")
def chromium_executable() -> str:
    """Debian's Chromium; skipped loudly when absent, a failure in CI."""
    if not Path(CHROMIUM).exists():
        _missing(f"Chromium not found at {CHROMIUM}", "apt-get install chromium")
    return CHROMIUM


# Module scope, not session: see the module docstring.
@pytest.fixture(scope="module")
def browser(chromium_executable: str) -> Iterator[Browser]:
    """One headless Chromium for the module; each test opens its own contexts."""
    driver: Playwright = sync_playwright().start()
    try:
        chromium = driver.chromium.launch(executable_path=chromium_executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        driver.stop()
