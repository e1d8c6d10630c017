"""Rendering helpers for the server-side pages (Jinja2, autoescaped, no inline script)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

from dojang.sessions.model import Session

TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True),
    auto_reload=False,
)

_BROWSERS = (
    ("Edg/", "Edge"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
)
_SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
)


def render(
    name: str, status: int = 200, headers: dict[str, str] | None = None, **context: Any
) -> HTMLResponse:
    """Render a template; pages are per-user, so nothing is cached."""
    html = _env.get_template(name).render(**context)
    hdrs = {"cache-control": "no-store"}
    if headers:
        hdrs.update(headers)
    return HTMLResponse(html, status_code=status, headers=hdrs)


def describe_device(user_agent: str | None) -> str:
    """A short human label ("Firefox on Linux") for a User-Agent string."""
    if not user_agent:
        return "Unknown device"
    browser = next((name for token, name in _BROWSERS if token in user_agent), None)
    system = next((name for token, name in _SYSTEMS if token in user_agent), None)
    if browser and system:
        return f"{browser} on {system}"
    if browser or system:
        return browser or system or ""
    return re.sub(r"[^\w .;/()-]", "", user_agent)[:40] or "Unknown device"


def _when(ts: float) -> tuple[str, str]:
    dt = datetime.fromtimestamp(ts, tz=UTC)
    return dt.strftime("%Y-%m-%d %H:%M UTC"), dt.isoformat()


def session_rows(sessions: list[Session], current_sid: str | None) -> list[dict[str, Any]]:
    """Rows for the account page's sessions table."""
    rows = []
    # The current session first, then the others newest first.
    for s in sorted(sessions, key=lambda x: (x.sid != current_sid, -x.created_at)):
        created, created_iso = _when(s.created_at)
        seen, seen_iso = _when(s.last_seen)
        rows.append(
            {
                "sid": s.sid,
                "device": describe_device(s.user_agent),
                "ip": s.ip,
                "created": created,
                "created_iso": created_iso,
                "last_seen": seen,
                "last_seen_iso": seen_iso,
                "current": s.sid == current_sid,
            }
        )
    return rows
