"""The WSGI middleware around a real (minimal) Django application.

Django is configured in-process (``settings.configure``) with one URL that returns the claims
the middleware put in ``environ["dojang.claims"]`` (Django's ``request.META``), and driven
through ``httpx.WSGITransport``: the same WSGI callable a server like gunicorn would call.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

pytest.importorskip("django", reason="Django is in the dev extra: pip install -e '.[dev]'")

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, JsonResponse
from django.urls import path

from dojang.clock import FrozenClock
from dojang.jose import KeySet
from dojang.tokens import Issuer
from dojang.verify import Verifier, wsgi
from tests.verify.conftest import AUD, ISS

views_called: list[str] = []


def claims_view(request: HttpRequest) -> JsonResponse:
    views_called.append(request.path)
    return JsonResponse(request.META[wsgi.CLAIMS_KEY])


def health_view(request: HttpRequest) -> JsonResponse:
    views_called.append(request.path)
    return JsonResponse({"ok": True, "claims": wsgi.CLAIMS_KEY in request.META})


urlpatterns = [path("claims", claims_view), path("healthz", health_view)]

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="dojang-tests-" + "k" * 40,
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["testserver"],
        INSTALLED_APPS=[],
        MIDDLEWARE=[],
        DATABASES={},
        USE_TZ=True,
    )


@pytest.fixture
def client(keyset: KeySet, clock: FrozenClock) -> Iterator[httpx.Client]:
    if __name__ != settings.ROOT_URLCONF:
        pytest.skip("Django was configured by someone else in this process")
    verifier = Verifier(issuer=ISS, audience=AUD, jwks=keyset.public_jwks(), clock=clock)
    app = wsgi.JWTMiddleware(get_wsgi_application(), verifier, exempt_paths={"/healthz"})
    views_called.clear()
    transport = httpx.WSGITransport(app=app)
    with httpx.Client(transport=transport, base_url="http://testserver") as client:
        yield client


def _body(resp: httpx.Response) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(resp.content)
    return data


def test_django_view_receives_the_verified_claims(client: httpx.Client, issuer: Issuer) -> None:
    token = issuer.access_token(sub="u1", audience=AUD, sid="s1", scope="orders:read")
    resp = client.get("/claims", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200, resp.text
    claims = _body(resp)
    assert claims["sub"] == "u1" and claims["sid"] == "s1" and claims["aud"] == AUD
    assert claims["scope"] == "orders:read"
    assert views_called == ["/claims"]


def test_django_rejections_never_reach_the_view(
    client: httpx.Client, issuer: Issuer, clock: FrozenClock
) -> None:
    token = issuer.access_token(sub="u1", audience=AUD, sid="s1")
    missing = client.get("/claims")
    assert missing.status_code == 401 and _body(missing)["error"] == "missing_token"
    assert missing.headers["www-authenticate"] == 'Bearer realm="dojang"'
    forged = client.get("/claims", headers={"Authorization": f"Bearer {token[:-4]}AAAA"})
    assert forged.status_code == 401 and _body(forged)["error"] == "bad_signature"
    assert 'error="invalid_token"' in forged.headers["www-authenticate"]
    clock.advance(3600)
    expired = client.get("/claims", headers={"Authorization": f"Bearer {token}"})
    assert expired.status_code == 401 and _body(expired)["error"] == "expired_token"
    for resp in (missing, forged, expired):
        assert set(_body(resp)) == {"error", "detail"}
        assert resp.headers["cache-control"] == "no-store"
    assert views_called == []
    # An exempt path reaches Django without a token, and without claims.
    health = client.get("/healthz")
    assert health.status_code == 200 and _body(health) == {"ok": True, "claims": False}
    assert views_called == ["/healthz"]
