"""Reload the signing keys when ``keys.json`` changes (``dojang keys rotate`` on a live server).

The CLI writes the file atomically (temp file + rename), so a changed mtime/inode always
means a complete new file. A file that fails to load keeps the current keys and logs loudly:
a bad edit must never take signing down.
"""

from __future__ import annotations

import asyncio
import logging
import os

from dojang.errors import KeyFileError
from dojang.jose import KeySet
from dojang.server.services import Services

log = logging.getLogger("dojang.server")


def _stamp(path: os.PathLike[str] | str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ino)


def reload_if_changed(svc: Services, last: tuple[int, int] | None) -> tuple[int, int] | None:
    """Reload keys if the file changed since ``last``; return the stamp now in force."""
    path = svc.settings.keys_path
    stamp = _stamp(path)
    if stamp is None or stamp == last:
        return last
    try:
        keyset = KeySet.load(path)
    except KeyFileError as exc:
        log.error("keys file changed but cannot be loaded; keeping current keys: %s", exc)
        return stamp
    svc.replace_keys(keyset)
    log.info("signing keys reloaded from %s (active %s)", path, keyset.active.kid)
    return stamp


async def watch_keys(svc: Services, interval: float = 2.0) -> None:
    """Poll the key file forever (cancelled at shutdown)."""
    last = _stamp(svc.settings.keys_path)
    while True:
        await asyncio.sleep(interval)
        last = reload_if_changed(svc, last)
