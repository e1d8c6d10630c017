"""The shipped edge configurations: nginx template checked by ``nginx -t``, Traefik and Envoy
parsed and held to the header contract (no Traefik/Envoy binary is available offline).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs; types-PyYAML not a dep

from .harness import NGINX_TEMPLATE, REPO, nginx_command, render_site, write_nginx

IDENTITY_HEADERS = {"authorization", "x-dojang-subject", "x-dojang-session"}
DOJANG_PATHS = ["/login", "/logout", "/account", "/api/v1/", "/static/", "/auth/", "/.well-known/"]


def _yaml(path: str) -> Any:
    return yaml.safe_load((REPO / path).read_text())


def test_nginx_template_renders_and_passes_nginx_t(nginx_binary: str, tmp_path: Path) -> None:
    """Every placeholder is filled by the documented names; nginx itself accepts the result."""
    placeholders = set(re.findall(r"\$\{([A-Z_]+)\}", NGINX_TEMPLATE.read_text()))
    assert placeholders == {
        "LISTEN",
        "DOJANG_UPSTREAM",
        "APP_UPSTREAM",
        "DOJANG_AUDIENCE",
        "DOJANG_SCOPE",
    }
    site = render_site(listen="127.0.0.1:1", dojang="127.0.0.1:2", app="127.0.0.1:3")
    directives = [line.split("#", 1)[0] for line in site.splitlines()]
    assert not [line for line in directives if "${" in line]
    write_nginx(tmp_path, site)
    done = subprocess.run(
        [*nginx_command(tmp_path), "-t"], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr


def test_nginx_template_overwrites_every_identity_header() -> None:
    """Header spoofing: the app location sets each identity header from the check's answer."""
    text = NGINX_TEMPLATE.read_text()
    app = text[text.index("location / {") : text.index("location = /_dojang_check")]
    for header, variable in (
        ("Authorization", "$dojang_authorization"),
        ("X-Dojang-Subject", "$dojang_subject"),
        ("X-Dojang-Session", "$dojang_session"),
    ):
        assert f"proxy_set_header {header} {variable};" in app
    check = text[text.index("location = /_dojang_check") :]
    assert "internal;" in check
    assert "proxy_pass_request_body off;" in check
    assert "proxy_set_header X-Original-URI $request_uri;" in check


def test_traefik_forward_auth_contract() -> None:
    """ForwardAuth points at /auth/check with an audience and copies the identity headers."""
    http = _yaml("deploy/traefik/dynamic.yml")["http"]
    forward = http["middlewares"]["dojang-auth"]["forwardAuth"]
    assert forward["address"].split("?")[0].endswith("/auth/check")
    assert "aud=" in forward["address"]
    assert forward["trustForwardHeader"] is False
    assert {h.lower() for h in forward["authResponseHeaders"]} == IDENTITY_HEADERS
    assert {"cookie", "accept"} <= {h.lower() for h in forward["authRequestHeaders"]}
    routers = http["routers"]
    assert routers["orders"]["middlewares"] == ["dojang-auth"]
    assert "middlewares" not in routers["dojang"]
    assert routers["dojang"]["priority"] > routers["orders"]["priority"]
    for path in DOJANG_PATHS:
        assert f"`{path}`" in routers["dojang"]["rule"], path
    assert set(http["services"]) == {routers["dojang"]["service"], routers["orders"]["service"]}


def _find(node: Any, key: str) -> list[Any]:
    found: list[Any] = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                found.append(v)
            found.extend(_find(v, key))
    elif isinstance(node, list):
        for item in node:
            found.extend(_find(item, key))
    return found


def test_envoy_ext_authz_contract() -> None:
    """ext_authz (HTTP) fails closed, reaches /auth/check, copies only the identity headers."""
    config = _yaml("deploy/envoy/envoy.yaml")
    [ext_authz] = [
        f["typed_config"]
        for f in _find(config, "http_filters")[0]
        if f["name"] == "envoy.filters.http.ext_authz"
    ]
    assert ext_authz["failure_mode_allow"] is False
    service = ext_authz["http_service"]
    assert service["path_prefix"].startswith("/auth/check?aud=")
    assert service["path_prefix"].endswith("=")  # swallows the original path (see the file)
    response = service["authorization_response"]
    upstream = {p["exact"] for p in response["allowed_upstream_headers"]["patterns"]}
    assert upstream == IDENTITY_HEADERS
    assert "location" in {p["exact"] for p in response["allowed_client_headers"]["patterns"]}
    request = {p["exact"] for p in service["authorization_request"]["allowed_headers"]["patterns"]}
    assert {"cookie", "accept"} <= request
    clusters = {c["name"] for c in config["static_resources"]["clusters"]}
    assert service["server_uri"]["cluster"] in clusters
    [routes] = _find(config, "routes")
    bypass, protected = routes
    assert bypass["typed_per_filter_config"]["envoy.filters.http.ext_authz"]["disabled"] is True
    pattern = re.compile(bypass["match"]["safe_regex"]["regex"])
    for path in DOJANG_PATHS:
        assert pattern.fullmatch(path + ("x" if path.endswith("/") else "")), path
    assert not pattern.fullmatch("/orders")
    assert protected["match"] == {"prefix": "/"} and "typed_per_filter_config" not in protected


@pytest.mark.parametrize("path", ["deploy/traefik/dynamic.yml", "deploy/envoy/envoy.yaml"])
def test_yaml_files_parse(path: str) -> None:
    """Plain YAML, one document, a mapping at the top."""
    assert isinstance(_yaml(path), dict)
