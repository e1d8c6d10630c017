"""``/auth/check`` (200 logged in, else 401) and ``/login`` (log the session in)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse  # type: ignore[import-untyped]
from django.urls import path  # type: ignore[import-untyped]
from django.views.decorators.csrf import csrf_exempt  # type: ignore[import-untyped]


def auth_check(request: HttpRequest) -> HttpResponse:
    """200 with the subject header for a logged-in session, 401 otherwise."""
    user = request.session.get("user")
    if user is None:
        return HttpResponse(status=401)
    response = HttpResponse(status=200)
    response["X-Subject"] = str(user)
    return response


@csrf_exempt  # type: ignore[untyped-decorator]
def login(request: HttpRequest) -> HttpResponse:
    """Mark the session logged in (no password: the benchmark measures the check)."""
    request.session.cycle_key()
    request.session["user"] = "benchuser"
    return HttpResponse(status=200)


urlpatterns = [path("auth/check", auth_check), path("login", login)]
