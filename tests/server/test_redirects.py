"""Unit tests for the open-redirect defence."""

from __future__ import annotations

import pytest

from dojang.server.redirects import safe_next

from .test_pages import HOSTILE_NEXT


@pytest.mark.parametrize("value", [*HOSTILE_NEXT, "", None, "/%2f%2fevil.com", "/%5C%5Cevil"])
def test_hostile_values_fall_back(value: str | None) -> None:
    assert safe_next(value, default="/home") == "/home"


@pytest.mark.parametrize("value", ["/", "/account", "/a/b?c=d#e", "/%E2%9C%93", "/a%20b"])
def test_relative_paths_pass(value: str) -> None:
    assert safe_next(value, default="/home") == value
