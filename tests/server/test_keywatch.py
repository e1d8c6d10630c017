"""A running server picks up rotated keys from keys.json without a restart."""

from __future__ import annotations

import pytest

from dojang.errors import UnknownKey
from dojang.jose import KeySet
from dojang.server.keywatch import reload_if_changed

from .conftest import Env


async def test_rotation_on_disk_is_picked_up(env: Env) -> None:
    path = env.settings.keys_path
    before = env.services.keyset.active.kid
    stamp = reload_if_changed(env.services, None)  # first look: loads the same keys
    on_disk = KeySet.load(path)
    new_active = on_disk.rotate(now=env.clock.now(), keep_for=900)
    on_disk.add_next(now=env.clock.now())
    on_disk.save(path)
    stamp = reload_if_changed(env.services, stamp)
    assert env.services.keyset.active.kid == new_active.kid != before
    jwks = (await env.client.get("/.well-known/jwks.json")).json()
    kids = {k["kid"] for k in jwks["keys"]}
    assert {before, new_active.kid} <= kids  # the retired key stays published
    await env.services.clients.add_audience("api", "")
    token = env.services.issuer.access_token(sub="u", audience="api", sid="s" * 22)
    assert env.services.verifier_for("api").verify(token)["sub"] == "u"
    assert reload_if_changed(env.services, stamp) == stamp  # unchanged: nothing to do


async def test_corrupt_rewrite_keeps_the_current_keys(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    stamp = reload_if_changed(env.services, None)
    active = env.services.keyset.active.kid
    env.settings.keys_path.write_text("{broken")
    reload_if_changed(env.services, stamp)
    assert env.services.keyset.active.kid == active
    assert "cannot be loaded" in caplog.text
    with pytest.raises(UnknownKey):
        env.services.keyset.get("nope")
