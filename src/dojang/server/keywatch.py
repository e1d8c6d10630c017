"""Reload the signing keys when ``keys.json`` changes (``dojang keys rotate`` on a live server).

The CLI writes the file atomically (temp file + rename), so a changed mtime/inode always
means a complete new file. A file that fails to load keeps the current keys and logs a
warning naming the file; the watcher goes on, and loads the file as soon as it is fixed
(a fix changes the stamp again). A bad edit must never take signing down, and nothing may
end the watcher short of cancellation: a dead watcher would silently keep a compromised key
that ``dojang keys retire --now`` has just removed.
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
    """Reload keys if the file changed since ``last``; return the stamp now in force.

    Never raises (except on cancellation): on any failure the current keys stay in force.
    """
    path = svc.settings.keys_path
    stamp = _stamp(path)
    if stamp is None or stamp == last:
        return last
    try:
        keyset = KeySet.load(path, clock=svc.clock)
        active = keyset.active.kid
        svc.replace_keys(keyset)
    except KeyFileError as exc:
        # The message names the file and the problem (never key material).
        log.warning("keys file changed but cannot be loaded; keeping current keys: %s", exc)
        return stamp
    except Exception:  # a bug must not end the watcher; the keys in force stay (fail safe)
        log.exception("unexpected error reloading %s; keeping current keys", path)
        # This file is not retried until it changes again: no log flood every round.
        return stamp
    log.info("signing keys reloaded from %s (active %s)", path, active)
    return stamp


async def watch_keys(svc: Services, interval: float = 2.0) -> None:
    """Poll the key file forever (cancelled at shutdown)."""
    last = _stamp(svc.settings.keys_path)
    while True:
        await asyncio.sleep(interval)
        try:
            last = reload_if_changed(svc, last)
        except Exception:  # belt and braces: keep watching whatever happens in one round
            log.exception("key watcher round failed; still watching")
