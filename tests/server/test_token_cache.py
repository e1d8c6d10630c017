"""The forward-auth token cache: reuse until near expiry, bounded, dropped with the session."""

from __future__ import annotations

from dojang.server.token_cache import REFRESH_MARGIN, TokenCache


def test_reuse_until_close_to_expiry() -> None:
    cache = TokenCache()
    cache.put("s1", "api", "", "tok", exp=100.0)
    assert cache.get("s1", "api", "", now=100.0 - REFRESH_MARGIN - 1) == "tok"
    assert cache.get("s1", "api", "", now=100.0 - REFRESH_MARGIN + 1) is None
    assert len(cache) == 0


def test_ending_a_session_drops_only_its_tokens() -> None:
    cache = TokenCache()
    cache.put("s1", "a", "", "t1", exp=100.0)
    cache.put("s1", "b", "x", "t2", exp=100.0)
    cache.put("s2", "a", "", "t3", exp=100.0)
    cache.drop_session("s1")
    assert cache.get("s1", "a", "", now=0.0) is None
    assert cache.get("s1", "b", "x", now=0.0) is None
    assert cache.get("s2", "a", "", now=0.0) == "t3"
    cache.drop_session("s1")  # idempotent
    assert len(cache) == 1


def test_bounded_least_recently_used_first() -> None:
    cache = TokenCache(max_entries=2)
    cache.put("s1", "a", "", "t1", exp=100.0)
    cache.put("s2", "a", "", "t2", exp=100.0)
    assert cache.get("s1", "a", "", now=0.0) == "t1"  # s1 is now the most recent
    cache.put("s3", "a", "", "t3", exp=100.0)
    assert cache.get("s2", "a", "", now=0.0) is None
    assert cache.get("s1", "a", "", now=0.0) == "t1"
    cache.drop_session("s2")  # its index entry went with the eviction
    assert len(cache) == 2
