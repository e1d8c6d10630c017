"""A running server picks up rotated keys from keys.json without a restart."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable

import pytest

from dojang.errors import UnknownKey
from dojang.jose import KeySet
from dojang.server.keywatch import reload_if_changed, watch_keys

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


def _rotate_on_disk(env: Env) -> str:
    """Rotate keys.json the way ``dojang keys rotate`` does; return the new active kid."""
    on_disk = KeySet.load(env.settings.keys_path)
    new_active = on_disk.rotate(now=env.clock.now(), keep_for=900)
    on_disk.add_next(now=env.clock.now())
    on_disk.save(env.settings.keys_path)
    return new_active.kid


async def _until(predicate: Callable[[], bool], what: str) -> None:
    """Poll to a deadline (no fixed sleeps)."""
    deadline = asyncio.get_running_loop().time() + 5.0
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)  # poll to a deadline


async def test_file_without_active_key_is_refused_with_a_warning(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    stamp = reload_if_changed(env.services, None)
    active = env.services.keyset.active.kid
    document = json.loads(env.settings.keys_path.read_text())
    for entry in document["keys"]:
        if entry["state"] == "active":
            entry.update(state="retired", retire_after=env.clock.now() + 60)
    env.settings.keys_path.write_text(json.dumps(document))
    with caplog.at_level(logging.WARNING, logger="dojang.server"):
        stamp = reload_if_changed(env.services, stamp)
    assert env.services.keyset.active.kid == active
    warning = next(r for r in caplog.records if "cannot be loaded" in r.getMessage())
    assert warning.levelno == logging.WARNING
    assert "keys.json" in warning.getMessage() and "no active key" in warning.getMessage()
    # Fixing the file is picked up on the next look.
    await env.services.clients.add_audience("api", "")
    env.settings.keys_path.unlink()
    env.services.keyset.save(env.settings.keys_path)
    new = _rotate_on_disk(env)
    reload_if_changed(env.services, stamp)
    assert env.services.keyset.active.kid == new


async def test_watcher_keeps_watching_after_bad_files_and_errors(
    env: Env, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broken key file, or a bug while switching keys, must never end the watcher: a dead
    watcher would keep serving a key that ``dojang keys retire --now`` just removed."""
    svc = env.services
    active = svc.keyset.active.kid
    good = svc.settings.keys_path.read_bytes()
    task = asyncio.create_task(watch_keys(svc, interval=0.005))
    await asyncio.sleep(0)  # let the watcher take its first stamp of the good file
    try:
        svc.settings.keys_path.write_text("{broken")
        await _until(lambda: "cannot be loaded" in caplog.text, "the corrupt file to be seen")
        assert svc.keyset.active.kid == active and not task.done()

        def boom(keyset: KeySet) -> None:
            raise RuntimeError("simulated bug while switching keys")

        monkeypatch.setattr(svc, "replace_keys", boom)
        svc.settings.keys_path.write_bytes(good)
        first = _rotate_on_disk(env)
        await _until(lambda: "unexpected error reloading" in caplog.text, "the failed switch")
        assert svc.keyset.active.kid == active and not task.done()

        monkeypatch.undo()
        second = _rotate_on_disk(env)
        await _until(lambda: svc.keyset.active.kid == second, "the fixed file to load")
        assert second != first and not task.done()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
