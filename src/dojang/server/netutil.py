"""Client address and origin helpers."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit

from starlette.requests import Request

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Sequence[str]) -> tuple[Network, ...]:
    """Parse the (already validated) trusted proxy list."""
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)


def _is_trusted(addr: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def client_ip(request: Request, trusted: tuple[Network, ...]) -> str | None:
    """The client's IP address.

    ``X-Forwarded-For`` is believed only when the direct peer is a trusted proxy, and then
    only up to the right-most address that is not itself a trusted proxy: everything left of
    that was written by the client and can be forged.
    """
    peer = request.client.host if request.client else None
    if peer is None or not trusted or not _is_trusted(peer, trusted):
        return peer
    forwarded = request.headers.get("x-forwarded-for", "")
    hops = [h.strip() for h in forwarded.split(",") if h.strip()][-16:]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer  # garbage in the chain: do not guess
        if not _is_trusted(hop, trusted):
            return hop
    return peer


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, lower-cased, default ports dropped."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = parts.port
    default = {"http": 80, "https": 443}.get(parts.scheme)
    netloc = host if port in (None, default) else f"{host}:{port}"
    if ":" in host and not host.startswith("["):
        netloc = f"[{host}]" if port in (None, default) else f"[{host}]:{port}"
    return f"{parts.scheme}://{netloc}"
