"""Real processes for the edge tests: ``dojang serve``, the orders API, nginx, a header echo.

Everything binds to 127.0.0.1 on free ports, writes into a temporary directory, and is stopped
by the process id it was started with. nginx runs in the foreground from a generated main
config (``-p``/``-c``/``-e``/``-g``) that includes the shipped ``deploy/nginx/dojang.conf``
rendered with the ports of this run; the system's ``/etc/nginx`` is never read or touched.

Also used by ``deploy/measure_overhead.py`` (run from the repository root).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
NGINX_TEMPLATE = REPO / "deploy" / "nginx" / "dojang.conf"
NGINX = os.environ.get("DOJANG_NGINX", "/usr/sbin/nginx")
# Fast argon2id parameters: hashing cost is not what these tests are about.
FAST_HASH_ENV = {
    "DOJANG_ARGON2_TIME_COST": "1",
    "DOJANG_ARGON2_MEMORY_COST": "1024",
    "DOJANG_ARGON2_PARALLELISM": "1",
}
START_DEADLINE = 20.0
STOP_DEADLINE = 10.0
AUDIENCE = "orders-api"
SCOPES = "orders:read orders:write"
# How soon after a logout returns a business API following dojang's revocation feed must refuse
# the session's tokens. The benchmark (`bench/propagation_bench.py`, bench/results/
# propagation.md) measures a p99 of about 5 ms on loopback; 250 ms leaves room for a loaded CI
# machine while a feed that is not followed fails at once (the token would live until exp, 60 s).
REVOCATION_BOUND_S = 0.25

_PASSWORD_LINE = re.compile(r"^demo password:\s*(\S+)\s*$")
_USER_LINE = re.compile(r"^demo user:\s*(\S+)\s*$")
_PLACEHOLDER = re.compile(
    r"\$\{(LISTEN|DOJANG_UPSTREAM|APP_UPSTREAM|DOJANG_AUDIENCE|DOJANG_SCOPE)\}"
)


class StartError(RuntimeError):
    """A process did not come up; the message carries its output."""


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def dojang_executable() -> str:
    """The ``dojang`` script installed beside the running interpreter (the project venv)."""
    script = Path(sys.executable).with_name("dojang")
    if script.exists():
        return str(script)
    found = shutil.which("dojang")
    if found is None:
        raise StartError("the `dojang` console script is not installed in this environment")
    return found


def clean_env(**extra: str) -> dict[str, str]:
    """This environment minus the developer's ``DOJANG_*`` settings, plus fast hashing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOJANG_")}
    env.update(FAST_HASH_ENV)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass
class Proc:
    """A started subprocess whose combined output is drained by a thread."""

    name: str
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    fresh: queue.Queue[str | None] = field(default_factory=queue.Queue)
    reader: threading.Thread | None = None

    @classmethod
    def start(cls, name: str, command: list[str], env: Mapping[str, str], cwd: Path) -> Proc:
        """Start ``command``; its stdout+stderr are collected in ``lines``."""
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=dict(env),
            cwd=cwd,
        )
        proc = cls(name, process)
        stdout = process.stdout
        assert stdout is not None

        def pump() -> None:
            # Keep draining so the child never blocks on a full pipe; None marks the end.
            for line in stdout:
                proc.lines.append(line)
                proc.fresh.put(line)
            proc.fresh.put(None)

        proc.reader = threading.Thread(target=pump, name=f"{name}-output", daemon=True)
        proc.reader.start()
        return proc

    def output(self) -> str:
        """Everything printed so far."""
        return "".join(self.lines)

    def fail(self, why: str) -> StartError:
        """An error naming the process, its exit code and its output."""
        return StartError(
            f"{self.name} did not start: {why}\nexit code: {self.process.poll()}\n"
            f"--- {self.name} output ---\n{self.output()}"
        )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a deadline; only this process id."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_DEADLINE)
        if self.reader is not None:
            self.reader.join(timeout=STOP_DEADLINE)
        if self.process.stdout is not None:
            self.process.stdout.close()


def wait_http_ok(proc: Proc, url: str, deadline: float) -> None:
    """Poll ``url`` until it answers below 500, the process dies, or the deadline passes."""
    last = "no answer"
    with httpx.Client(trust_env=False, timeout=2.0) as client:
        while True:
            if proc.process.poll() is not None:
                raise proc.fail(f"exited before {url} answered")
            try:
                response = client.get(url)
                if response.status_code < 500:
                    return
                last = f"HTTP {response.status_code}"
            except httpx.TransportError as e:
                last = type(e).__name__
            if time.monotonic() > deadline:
                raise proc.fail(f"{url} not answering (last: {last})")
            # Poll without sleeping blind: wake early if the process dies.
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.process.wait(timeout=0.05)


def run_cli(*args: str, data_dir: Path) -> str:
    """Run ``dojang <args> --data-dir D`` to completion and return its stdout."""
    done = subprocess.run(
        [dojang_executable(), *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise StartError(f"dojang {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


@dataclass
class Dojang:
    """A running ``dojang serve --demo`` with the registered orders audience and a client."""

    proc: Proc
    url: str  # where it listens (direct, bypassing nginx)
    public_url: str  # what it believes it is (nginx)
    username: str
    password: str
    client_id: str
    client_secret: str


def start_dojang(tmp: Path, port: int, public_url: str, **extra_env: str) -> Dojang:
    """Register ``orders-api`` and an introspection client, then serve with the demo user.

    ``extra_env`` adds settings (``DOJANG_ACCESS_TOKEN_TTL="900"``...) to the clean environment.
    """
    data_dir = tmp / "dojang-data"
    run_cli("audiences", "add", AUDIENCE, "--scopes", SCOPES, data_dir=data_dir)
    out = run_cli("clients", "add", "orders-introspector", "--serves", AUDIENCE, data_dir=data_dir)
    creds = dict(re.findall(r"^(client_id|client_secret):\s*(\S+)\s*$", out, re.MULTILINE))
    command = [
        dojang_executable(),
        "serve",
        "--demo",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--public-url",
        public_url,
    ]
    # nginx is the only client dojang sees: believe its X-Forwarded-For.
    env = clean_env(DOJANG_TRUSTED_PROXIES="127.0.0.1", **extra_env)
    proc = Proc.start("dojang", command, env, REPO)
    deadline = time.monotonic() + START_DEADLINE
    username = password = ""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            proc.stop()
            raise proc.fail("no 'listening' line in time")
        try:
            line = proc.fresh.get(timeout=remaining)
        except queue.Empty:
            continue
        if line is None:
            raise proc.fail("exited during start-up")
        text = line.strip()
        if m := _USER_LINE.match(text):
            username = m.group(1)
        elif m := _PASSWORD_LINE.match(text):
            password = m.group(1)
        elif "listening" in text:
            break
    url = f"http://127.0.0.1:{port}"
    try:
        if not username or not password:
            raise proc.fail("no demo credentials printed before 'listening'")
        wait_http_ok(proc, f"{url}/healthz", deadline)
    except StartError:
        proc.stop()
        raise
    return Dojang(
        proc, url, public_url, username, password, creds["client_id"], creds["client_secret"]
    )


def start_orders_api(port: int, issuer: str, jwks_url: str, **extra_env: str) -> Proc:
    """``uvicorn examples.orders_api.app:app`` configured for this dojang.

    The API follows the revocation feed beside ``jwks_url`` unless ``extra_env`` says
    otherwise; it counts as started once ``/healthz`` answers 200, i.e. its verifier is built
    and the feed is in sync, so it can already refuse a revoked token.
    """
    env = clean_env(DOJANG_ISSUER=issuer, DOJANG_JWKS_URL=jwks_url, **extra_env)
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "examples.orders_api.app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
    ]
    proc = Proc.start("orders-api", command, env, REPO)
    try:
        wait_http_ok(proc, f"http://127.0.0.1:{port}/healthz", time.monotonic() + START_DEADLINE)
    except StartError:
        proc.stop()
        raise
    return proc


def until_refused(
    client: httpx.Client, url: str, token: str, since: float, bound: float = REVOCATION_BOUND_S
) -> tuple[float, httpx.Response]:
    """GET ``url`` with ``token`` back to back until it is no longer 200 or ``bound`` passes.

    Returns the seconds from ``since`` (a ``time.perf_counter()`` taken when the logout
    returned) to that answer, and the answer. Each request is a loopback round trip of a
    millisecond or two, so the token is tried every few milliseconds without sleeping.
    """
    headers = {"authorization": f"Bearer {token}"}
    while True:
        response = client.get(url, headers=headers)
        elapsed = time.perf_counter() - since
        if response.status_code != 200 or elapsed > bound:
            return elapsed, response


def render_site(
    *, listen: str, dojang: str, app: str, audience: str = AUDIENCE, scope: str = "orders:read"
) -> str:
    """The shipped template with every placeholder filled (``envsubst`` equivalent)."""
    values = {
        "LISTEN": listen,
        "DOJANG_UPSTREAM": dojang,
        "APP_UPSTREAM": app,
        "DOJANG_AUDIENCE": audience,
        "DOJANG_SCOPE": scope.replace(" ", "+"),
    }
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], NGINX_TEMPLATE.read_text())


def main_config(prefix: Path, site: Path, workers: int = 1) -> str:
    """A minimal nginx main config: temp paths and logs under ``prefix``, then the site."""
    # As root, workers would switch to `nobody` and lose access to the 0700 temp directory.
    user = "user root root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {prefix / ('tmp_' + kind)};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}worker_processes {workers};\n"
        f"error_log {prefix / 'error.log'} notice;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        f"    access_log {prefix / 'access.log'};\n"
        f"{temp}\n"
        f"    include {site};\n"
        "}\n"
    )


@dataclass
class Nginx:
    """A foreground nginx serving the rendered site."""

    proc: Proc
    url: str
    prefix: Path

    def error_log(self) -> str:
        """nginx's error log so far (for failure messages)."""
        path = self.prefix / "error.log"
        return path.read_text() if path.exists() else ""


def nginx_command(prefix: Path) -> list[str]:
    """argv for nginx with everything under ``prefix`` (``-t`` is appended to only test)."""
    return [
        NGINX,
        "-p",
        str(prefix),
        "-e",
        str(prefix / "error.log"),
        "-c",
        str(prefix / "nginx.conf"),
        "-g",
        f"daemon off; pid {prefix / 'nginx.pid'};",
    ]


def write_nginx(prefix: Path, site_text: str, workers: int = 1) -> None:
    """Write ``site.conf`` and ``nginx.conf`` into ``prefix``."""
    prefix.mkdir(parents=True, exist_ok=True)
    site = prefix / "site.conf"
    site.write_text(site_text)
    (prefix / "nginx.conf").write_text(main_config(prefix, site, workers))


def start_nginx(prefix: Path, port: int, *, dojang: str, app: str, workers: int = 1) -> Nginx:
    """Render the template for these upstreams, check it with ``nginx -t``, run it."""
    write_nginx(prefix, render_site(listen=f"127.0.0.1:{port}", dojang=dojang, app=app), workers)
    test = subprocess.run(
        [*nginx_command(prefix), "-t"], capture_output=True, text=True, timeout=30, check=False
    )
    if test.returncode != 0:
        raise StartError(f"nginx -t refused the rendered config:\n{test.stderr}")
    proc = Proc.start("nginx", nginx_command(prefix), os.environ, prefix)
    nginx = Nginx(proc, f"http://127.0.0.1:{port}", prefix)
    try:
        # /.well-known/ goes straight to dojang: answers once nginx listens.
        wait_http_ok(proc, f"{nginx.url}/.well-known/jwks.json", time.monotonic() + 10)
    except StartError as exc:
        proc.stop()
        raise StartError(f"{exc}\n--- error.log ---\n{nginx.error_log()}") from None
    return nginx


# ----------------------------------------------------------------------------- header echo


class _EchoHandler(BaseHTTPRequestHandler):
    """Answers every request with the request line and headers it received, as JSON."""

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "headers": [[k.lower(), v] for k, v in self.headers.items()],
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        """Silence the per-request stderr line."""


@contextlib.contextmanager
def echo_server() -> Iterator[str]:
    """A loopback HTTP server reflecting request headers; yields its ``host:port``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="echo", daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=STOP_DEADLINE)
