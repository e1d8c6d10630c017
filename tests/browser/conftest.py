"""A real ``dojang serve --demo`` process and Debian's Chromium driven through Playwright.

The server is started exactly as a newcomer starts it (the installed ``dojang`` script, a fresh
data directory, a free loopback port), so these tests see what a person sees: the real cookie
headers, the real redirects, the real security headers.

Playwright's sync API refuses to run inside a running asyncio loop, so every browser test and
fixture here is a plain (non-async) function.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Playwright, sync_playwright

from tests.edge.harness import clean_env, dojang_executable, free_port

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
START_DEADLINE = 20.0
STOP_DEADLINE = 10.0
ARTIFACTS = Path(__file__).parent / "artifacts"

_PASSWORD_LINE = re.compile(r"^demo password:\s*(\S+)\s*$")
_USER_LINE = re.compile(r"^demo user:\s*(\S+)\s*$")


@dataclass
class DojangServer:
    """A running ``dojang serve --demo`` process and what it printed."""

    base_url: str
    username: str
    password: str
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def output(self) -> str:
        """Everything the process has printed so far (for failure messages)."""
        return "".join(self.lines)


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_DEADLINE)


@contextlib.contextmanager
def running_demo_server(
    data_dir: Path, port: int, env: dict[str, str] | None = None
) -> Iterator[DojangServer]:
    """``dojang serve --demo`` on ``port`` until the block ends; its output is drained."""
    base_url = f"http://127.0.0.1:{port}"
    command = [
        dojang_executable(),
        "serve",
        "--demo",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--public-url",
        base_url,
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        # Whatever the developer's shell configures must not change what is under test.
        env=clean_env() if env is None else env,
    )
    assert process.stdout is not None
    stdout = process.stdout
    lines: list[str] = []
    fresh: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        # Keep draining so the server never blocks on a full pipe; None marks end of output.
        for line in stdout:
            lines.append(line)
            fresh.put(line)
        fresh.put(None)

    reader = threading.Thread(target=pump, name="dojang-stdout", daemon=True)
    reader.start()
    server = DojangServer(base_url, "", "", process, lines)
    try:
        _wait_until_ready(server, fresh)
        yield server
    finally:
        _stop(process)
        reader.join(timeout=STOP_DEADLINE)
        stdout.close()


@pytest.fixture(scope="module")
def dojang_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DojangServer]:
    """``dojang serve --demo`` on a free loopback port with a fresh data directory."""
    data_dir = tmp_path_factory.mktemp("dojang") / "data"
    with running_demo_server(data_dir, free_port()) as server:
        yield server


def _wait_until_ready(server: DojangServer, fresh: queue.Queue[str | None]) -> None:
    deadline = time.monotonic() + START_DEADLINE

    def fail(why: str) -> None:
        pytest.fail(
            f"`dojang serve --demo` did not start: {why}\n"
            f"exit code: {server.process.poll()}\n--- server output ---\n{server.output()}",
            pytrace=False,
        )

    # 1. The start-up banner: demo credentials, then "listening".
    listening = False
    while not listening:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            fail(f"no 'listening' line within {START_DEADLINE:.0f} s")
        try:
            line = fresh.get(timeout=remaining)
        except queue.Empty:
            continue
        if line is None:
            fail("the process exited during start-up")
            return
        text = line.strip()
        if m := _USER_LINE.match(text):
            server.username = m.group(1)
        elif m := _PASSWORD_LINE.match(text):
            server.password = m.group(1)
        elif "listening" in text:
            listening = True
    if not server.username or not server.password:
        fail("no 'demo user:' / 'demo password:' lines before 'listening'")

    # 2. Readiness: /healthz answers 200.
    last = "no answer"
    with httpx.Client(base_url=server.base_url, trust_env=False, timeout=2.0) as client:
        while True:
            if server.process.poll() is not None:
                fail("the process exited before /healthz answered")
            try:
                response = client.get("/healthz")
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}"
            except httpx.TransportError as e:
                last = type(e).__name__
            if time.monotonic() > deadline:
                fail(f"/healthz not 200 within {START_DEADLINE:.0f} s (last: {last})")
            # Poll politely without sleeping blind: wake early if the process dies.
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.process.wait(timeout=0.1)


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """Debian's Chromium; skipped loudly when absent, but a failure in CI."""
    if not Path(CHROMIUM).exists():
        message = (
            f"Chromium not found at {CHROMIUM}: BROWSER TESTS NOT RUN "
            "(apt-get install chromium, or set DOJANG_CHROMIUM)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


# Module scope, not session: the sync API keeps an event loop running in this thread while it
# is alive, which would break every pytest-asyncio test collected after this module.
@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Playwright]:
    """The Playwright driver process (sync API)."""
    driver = sync_playwright().start()
    try:
        yield driver
    finally:
        driver.stop()


@pytest.fixture(scope="module")
def browser(chromium_executable: str, playwright_driver: Playwright) -> Iterator[Browser]:
    """One headless Chromium for this module; each test opens its own contexts."""
    chromium = playwright_driver.chromium.launch(
        executable_path=chromium_executable, args=CHROMIUM_ARGS
    )
    try:
        yield chromium
    finally:
        chromium.close()


NewContext = Callable[[], BrowserContext]
"""``new_context()`` → a fresh browser context: its own cookie jar, i.e. another device."""


@pytest.fixture
def new_context(browser: Browser, dojang_server: DojangServer) -> Iterator[NewContext]:
    """A factory of isolated browser contexts (separate devices), all closed in teardown."""
    contexts: list[BrowserContext] = []

    def make() -> BrowserContext:
        context = browser.new_context(base_url=dojang_server.base_url)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()
