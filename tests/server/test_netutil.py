"""Client addresses: X-Forwarded-For is believed only from trusted proxies."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from dojang.server.netutil import client_ip, parse_networks


def _request(peer: str, xff: str | None) -> Request:
    headers = [] if xff is None else [(b"x-forwarded-for", xff.encode())]
    return Request({"type": "http", "client": (peer, 5555), "headers": headers})


TRUSTED = parse_networks(["10.0.0.0/8", "127.0.0.1"])


@pytest.mark.parametrize(
    ("peer", "xff", "expected"),
    [
        # An untrusted peer cannot pick its own address by sending the header.
        ("203.0.113.9", "1.2.3.4", "203.0.113.9"),
        # A trusted proxy: the right-most address that is not itself a trusted proxy.
        ("10.0.0.5", "1.2.3.4", "1.2.3.4"),
        ("10.0.0.5", "6.6.6.6, 1.2.3.4, 10.0.0.7", "1.2.3.4"),
        # Garbage in the chain: do not guess, use the peer.
        ("10.0.0.5", "not-an-ip", "10.0.0.5"),
        ("10.0.0.5", "1.2.3.4, <script>", "10.0.0.5"),
        # Only proxies in the chain: the peer.
        ("10.0.0.5", "10.0.0.6", "10.0.0.5"),
        ("10.0.0.5", None, "10.0.0.5"),
    ],
)
def test_forwarded_for_is_believed_only_from_trusted_proxies(
    peer: str, xff: str | None, expected: str
) -> None:
    assert client_ip(_request(peer, xff), TRUSTED) == expected


def test_no_trusted_proxies_means_the_header_is_ignored() -> None:
    assert client_ip(_request("10.0.0.5", "1.2.3.4"), ()) == "10.0.0.5"
