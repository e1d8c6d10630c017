"""Sign in to the example RP with dojang in Chromium, then log out of dojang and watch the RP's
own session end through Back-Channel Logout.

Both are real processes on loopback ports: ``dojang serve --demo`` and ``python -m examples.rp``
(registered with ``dojang clients add --type confidential …``), driven by Debian's Chromium.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import (  # noqa: F401 - fixtures used by name
    DojangServer,
    _stop,
    chromium_executable,
    playwright_driver,
    running_demo_server,
)
from tests.browser.conftest import browser as browser
from tests.edge.harness import clean_env, dojang_executable, free_port

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 15.0


@dataclass
class Stack:
    """dojang and the RP, both running."""

    dojang: DojangServer
    data_dir: Path
    rp_url: str
    env: dict[str, str]


def _poll(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + DEADLINE
    with httpx.Client(trust_env=False, timeout=2.0) as c:
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"{url} exited early: {process.stdout.read() if process.stdout else ''}"
                )
            try:
                if c.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{url} not ready within {DEADLINE} s")
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.1)  # wakes early if the process dies


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """``dojang serve --demo`` + the example RP registered as a confidential client."""
    env = clean_env()
    port, rp_port = free_port(), free_port()
    base, rp_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{rp_port}"
    data_dir = tmp_path_factory.mktemp("oidc") / "data"
    add = subprocess.run(
        [
            dojang_executable(),
            "clients",
            "add",
            "example-rp",
            "--type",
            "confidential",
            "--redirect-uri",
            rp_url + "/callback",
            "--backchannel-logout-uri",
            rp_url + "/backchannel-logout",
            "--post-logout-redirect-uri",
            rp_url + "/signed-out",
            "--data-dir",
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert add.returncode == 0, add.stderr
    client_id = re.search(r"client_id: (\S+)", add.stdout).group(1)  # type: ignore[union-attr]
    secret = re.search(r"client_secret: (\S+)", add.stdout).group(1)  # type: ignore[union-attr]
    with running_demo_server(data_dir, port, env) as server:
        rp = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "examples.rp",
                "--issuer",
                base,
                "--client-id",
                client_id,
                "--base-url",
                rp_url,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            # Through the environment: a generated secret may begin with "-" (argparse would
            # take it for a flag), and a command line is visible to every process.
            env={**env, "RP_CLIENT_SECRET": secret},
        )
        try:
            _poll(rp_url + "/me", rp)
            yield Stack(server, data_dir, rp_url, env)
        finally:
            _stop(rp)
            if rp.stdout:
                rp.stdout.close()


def _sign_in(page: Page, stack: Stack) -> None:
    page.goto(stack.rp_url + "/")
    page.locator("#login").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    page.locator("#username").fill(stack.dojang.username)
    page.locator("#password").fill(stack.dojang.password)
    page.get_by_role("button", name="Log in").click()
    allow = page.locator("#allow")
    if allow.is_visible():
        expect(page.locator("#client-name")).to_have_text("example-rp")
        allow.click()
    page.wait_for_url(stack.rp_url + "/", timeout=DEADLINE * 1000)
    expect(page.locator("#who")).to_have_text(stack.dojang.username)


def _rp_signed_in(page: Page, stack: Stack) -> bool:
    signed: bool = page.request.get(stack.rp_url + "/me").json()["signed_in"]
    return signed


def test_sign_in_then_dojang_logout_ends_rp_session(browser: Browser, stack: Stack) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        _sign_in(page, stack)
        assert _rp_signed_in(page, stack)
        # Log out of dojang itself, from its own page.
        page.goto(stack.dojang.base_url + "/account")
        page.locator("header").get_by_role("button", name="Log out").click()
        expect(page.get_by_role("button", name="Log in")).to_be_visible()
        # With the session hook wired the RP hears at once; the drain CLI (the sweep) covers
        # the unwired case and is a no-op otherwise.
        drained = subprocess.run(
            [
                sys.executable,
                "-m",
                "dojang.oidc",
                "drain",
                "--data-dir",
                str(stack.data_dir),
                "--public-url",
                stack.dojang.base_url,
            ],
            capture_output=True,
            text=True,
            env=stack.env,
            timeout=60,
            check=False,
            cwd=ROOT,
        )
        assert drained.returncode == 0, drained.stderr
        deadline = time.monotonic() + DEADLINE
        while _rp_signed_in(page, stack):
            assert time.monotonic() < deadline, f"RP session survived: {drained.stdout}"
            page.wait_for_timeout(100)  # poll to a deadline
        page.goto(stack.rp_url + "/")
        expect(page.locator("#status")).to_have_text("Not signed in.")
    finally:
        context.close()


def test_rp_initiated_logout(browser: Browser, stack: Stack) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        _sign_in(page, stack)
        page.locator("#logout").click()
        page.wait_for_url(re.compile(re.escape(stack.rp_url) + r"/signed-out\?state="))
        expect(page.locator("#status")).to_have_text("Signed out.")
        r = page.request.get(stack.dojang.base_url + "/api/v1/session")
        assert r.status == 401
    finally:
        context.close()
