"""``KeySet``: an ordered set of keys with rotation states, a key file and a public JWKS.

Rotation (DESIGN.md "Key rotation"): a *next* key is published in the JWKS before it signs, so
every verifier has it cached by the time it becomes *active* (``rotate(min_lead=...)`` refuses
to promote a key published too recently); the old active key becomes *retired* and stays
published until ``retire_after`` (the longest lifetime of a token it signed), then ``purge``
drops it from the file. Verifiers look keys up by ``kid`` only, never by trial.

A retired key past its ``retire_after`` is dead *at use time*, whether or not anyone has purged
the file yet: ``get``, ``in`` and ``public_jwks`` ignore it, judged by an explicit ``now`` or by
the key set's injected ``clock``. A compromised key that was retired but not yet purged can
therefore never verify again once its keep-until time has passed.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from dojang.clock import Clock
from dojang.errors import DojangError, InvalidToken, KeyFileError, MalformedToken, UnknownKey
from dojang.jose._json import parse_json_object
from dojang.jose.algorithms import SIGNING_ALGORITHMS
from dojang.jose.jwk import PRIVATE_MEMBERS, Key

__all__ = ["MAX_JWKS_KEYS", "KeySet", "KeyState", "RotationTooSoon"]

KeyState = Literal["next", "active", "retired", "published"]
_FILE_STATES = frozenset({"next", "active", "retired"})
_FILE_VERSION = 1
MAX_JWKS_KEYS = 64
_SELF_TEST = b"dojang key self-test"


class RotationTooSoon(KeyFileError):
    """The next key has not been published long enough for every JWKS cache to hold it.

    ``wait`` is how many more seconds the key must stay published before it may sign.
    """

    code = "rotation_too_soon"

    def __init__(self, message: str, *, wait: float) -> None:
        super().__init__(message)
        self.wait = wait


@dataclass
class _Entry:
    key: Key
    state: KeyState
    created_at: float
    retire_after: float | None = None
    # When the key first appeared in the JWKS; older key files lack it (see _load_document).
    published_at: float = 0.0

    def expired(self, now: float | None) -> bool:
        """A retired key whose keep-until time has passed: it must neither verify nor publish."""
        return (
            now is not None
            and self.state == "retired"
            and self.retire_after is not None
            and self.retire_after <= now
        )


def _is_time(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class KeySet:
    """Keys by ``kid`` with rotation states ``next``, ``active`` and ``retired``.

    Key sets built by ``from_jwks`` hold public keys in state ``published``: they verify but
    never sign. ``rejected`` lists why hostile JWKS entries were skipped. ``clock``, when set,
    is the time source for the use-time expiry of retired keys (``get``, ``in``,
    ``public_jwks``) whenever no explicit ``now`` is passed; without it (and without ``now``)
    those views do not look at the time at all.
    """

    __slots__ = ("_by_kid", "_entries", "clock", "rejected")

    def __init__(self, *, clock: Clock | None = None) -> None:
        """Create an empty key set; use ``generate``, ``load`` or ``from_jwks``."""
        self._entries: list[_Entry] = []
        self._by_kid: dict[str, _Entry] = {}
        self.rejected: list[str] = []
        self.clock = clock

    def __repr__(self) -> str:
        states = ", ".join(f"{e.key.kid}:{e.state}" for e in self._entries)
        return f"KeySet([{states}])"

    def _add(self, entry: _Entry) -> None:
        if entry.key.kid in self._by_kid:
            raise KeyFileError(f"duplicate kid {entry.key.kid!r}")
        self._entries.append(entry)
        self._by_kid[entry.key.kid] = entry

    # --- construction --------------------------------------------------------------------

    def _now(self, now: float | None) -> float | None:
        if now is not None:
            return float(now)
        return None if self.clock is None else self.clock.now()

    @classmethod
    def generate(
        cls, alg: str = "EdDSA", *, now: float = 0.0, clock: Clock | None = None
    ) -> KeySet:
        """Return a key set with one freshly generated active key (published at ``now``)."""
        keyset = cls(clock=clock)
        keyset._add(_Entry(Key.generate(alg), "active", float(now), published_at=float(now)))
        return keyset

    @classmethod
    def from_jwks(cls, jwks: Mapping[str, object]) -> KeySet:
        """Import a JWKS document for verification, rejecting hostile entries one by one.

        An entry is skipped (reason appended to ``rejected``) when it carries private members,
        is symmetric, has an unknown kty/crv, lacks ``kid`` or ``alg``, has ``use`` other than
        ``sig``, is weak RSA or an off-curve EC point. Duplicate kids reject every entry with
        that kid (an ambiguous kid must never pick "the first one"). MalformedToken when the
        document is not ``{"keys": [...]}``.
        """
        keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
        if not isinstance(keys, list):
            raise MalformedToken('JWKS must be an object with a "keys" array')
        keyset = cls()
        accepted: dict[str, tuple[str, Key]] = {}
        duplicates: set[str] = set()
        dup_reason = "duplicate kid; every key with it is rejected"
        for index, entry in enumerate(keys):
            if index >= MAX_JWKS_KEYS:
                keyset.rejected.append(f"keys[{index}:]: more than {MAX_JWKS_KEYS} keys")
                break
            label = f"keys[{index}]"
            if isinstance(entry, Mapping) and isinstance(entry.get("kid"), str):
                label += f" (kid {entry['kid']!r:.70})"
            try:
                key = _import_public(entry)
            except InvalidToken as exc:
                keyset.rejected.append(f"{label}: {exc}")
                continue
            if key.kid in accepted or key.kid in duplicates:
                first = accepted.pop(key.kid, None)
                if first is not None:
                    keyset.rejected.append(f"{first[0]}: {dup_reason}")
                duplicates.add(key.kid)
                keyset.rejected.append(f"{label}: {dup_reason}")
                continue
            accepted[key.kid] = (label, key)
        for _, key in accepted.values():
            keyset._add(_Entry(key, "published", 0.0))
        return keyset

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, clock: Clock | None = None) -> KeySet:
        """Load a key file written by ``save``; KeyFileError naming the file on any problem.

        Every private key is self-tested (sign, then verify with the public key from the file)
        so a mismatched or wrong-curve key refuses to start instead of minting bad tokens. A
        file without an active key is refused too: nothing could sign. ``clock`` is kept for
        the use-time expiry of retired keys (see the class docstring).
        """
        name = os.fspath(path)
        try:
            data = Path(name).read_bytes()
        except OSError as exc:
            raise KeyFileError(f"{name}: cannot read key file ({exc.strerror})") from None
        try:
            document = parse_json_object(data, "key file")
        except MalformedToken as exc:
            raise KeyFileError(f"{name}: corrupt key file: {exc}") from None
        keyset = cls(clock=clock)
        try:
            keyset._load_document(document)
        except DojangError as exc:
            raise KeyFileError(f"{name}: {exc}") from None
        return keyset

    def _load_document(self, document: dict[str, object]) -> None:
        if document.get("version") != _FILE_VERSION:
            raise KeyFileError(f"unsupported key file version (expected {_FILE_VERSION})")
        entries = document.get("keys")
        if not isinstance(entries, list) or not entries:
            raise KeyFileError('key file must have a non-empty "keys" array')
        for index, raw in enumerate(entries):
            if not isinstance(raw, dict):
                raise KeyFileError(f"keys[{index}] is not an object")
            state, created_at, retire_after = (
                raw.get("state"),
                raw.get("created_at"),
                raw.get("retire_after"),
            )
            # Files written before published_at existed: a key was published when it was
            # added to the file (servers reload it within seconds), i.e. at created_at.
            published_at = raw.get("published_at", created_at)
            if state not in _FILE_STATES:
                raise KeyFileError(f"keys[{index}]: state must be next, active or retired")
            if not _is_time(created_at) or not (retire_after is None or _is_time(retire_after)):
                raise KeyFileError(f"keys[{index}]: created_at/retire_after must be numbers")
            if not _is_time(published_at):
                raise KeyFileError(f"keys[{index}]: published_at must be a number")
            if state == "retired" and retire_after is None:
                raise KeyFileError(f"keys[{index}]: a retired key needs retire_after")
            jwk = raw.get("jwk")
            try:
                key = Key.from_jwk(jwk if isinstance(jwk, dict) else {})
            except InvalidToken as exc:
                raise KeyFileError(f"keys[{index}]: {exc}") from None
            if not key.is_private or not key.verify(key.sign(_SELF_TEST), _SELF_TEST):
                raise KeyFileError(f"keys[{index}] (kid {key.kid!r}) failed its self-test")
            self._add(
                _Entry(
                    key,
                    cast(KeyState, state),
                    float(cast(float, created_at)),
                    None if retire_after is None else float(cast(float, retire_after)),
                    float(cast(float, published_at)),
                )
            )
        counts = {s: sum(e.state == s for e in self._entries) for s in ("active", "next")}
        if counts["active"] > 1 or counts["next"] > 1:
            raise KeyFileError("key file has more than one active or next key")
        if counts["active"] == 0:
            raise KeyFileError("key file has no active key: nothing could sign tokens")

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the private key file atomically (temp file + ``os.replace``), mode 0600."""
        if any(e.state == "published" or not e.key.is_private for e in self._entries):
            raise KeyFileError("only a key set of private keys can be saved")
        document = {
            "version": _FILE_VERSION,
            "keys": [
                {
                    "jwk": e.key.private_jwk(),
                    "state": e.state,
                    "created_at": e.created_at,
                    "published_at": e.published_at,
                    "retire_after": e.retire_after,
                }
                for e in self._entries
            ],
        }
        data = json.dumps(document, indent=2).encode("utf-8") + b"\n"
        target = Path(os.fspath(path))
        try:
            # mkstemp creates the file 0600 from the start: the keys are never world-readable,
            # not even for an instant, and a crash leaves either the old or the new file.
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        except OSError as exc:
            raise KeyFileError(f"{target}: cannot write key file ({exc.strerror})") from None
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), 0o600)
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise KeyFileError(f"{target}: cannot write key file ({exc.strerror})") from None

    # --- lookup ---------------------------------------------------------------------------

    @property
    def active(self) -> Key:
        """The key that signs now; KeyFileError if there is none."""
        for entry in self._entries:
            if entry.state == "active":
                return entry.key
        raise KeyFileError("the key set has no active signing key")

    @property
    def upcoming(self) -> Key | None:
        """The published *next* key, or None."""
        entry = self._next_entry()
        return None if entry is None else entry.key

    def _next_entry(self) -> _Entry | None:
        return next((e for e in self._entries if e.state == "next"), None)

    def get(self, kid: str, *, now: float | None = None) -> Key:
        """Return the usable key with ``kid``; UnknownKey if absent or expired.

        A retired key whose ``retire_after`` is at or before ``now`` (default: the key set's
        clock, if any) is treated as absent even though the file still holds it.
        """
        entry = self._by_kid.get(kid)
        # Only a key with a keep-until time can have expired; the others skip the clock.
        if entry is None or (entry.retire_after is not None and entry.expired(self._now(now))):
            raise UnknownKey(f"no trusted key with kid {kid!r:.70}")
        return entry.key

    def __contains__(self, kid: object) -> bool:
        """True if ``kid`` names a usable key now (same rule as ``get``)."""
        if not isinstance(kid, str):
            return False
        entry = self._by_kid.get(kid)
        return entry is not None and not entry.expired(self._now(None))

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> list[Key]:
        """All keys held (expired retired ones included until purged), in insertion order."""
        return [e.key for e in self._entries]

    def public_jwks(self, *, now: float | None = None) -> dict[str, list[dict[str, str]]]:
        """The JWKS to publish: active, next, then retired keys still within their keep time.

        Retired keys past ``retire_after`` at ``now`` (default: the key set's clock, if any)
        are left out even before ``purge`` removes them from the file. Each entry is built
        from the public key object, so private members cannot leak.
        """
        at = self._now(now)
        order = {"active": 0, "next": 1, "published": 1, "retired": 2}
        ranked = sorted(self._entries, key=lambda e: order[e.state])
        return {"keys": [e.key.public_jwk() for e in ranked if not e.expired(at)]}

    def describe(self) -> list[dict[str, object]]:
        """Rows for ``dojang keys list``: kid, alg, state, created_at, published_at,
        retire_after."""
        return [
            {
                "kid": e.key.kid,
                "alg": e.key.alg,
                "state": e.state,
                "created_at": e.created_at,
                "published_at": e.published_at,
                "retire_after": e.retire_after,
            }
            for e in self._entries
        ]

    # --- rotation -------------------------------------------------------------------------

    def add_next(self, alg: str | None = None, *, now: float) -> Key:
        """Generate and publish the *next* key (it verifies, but does not sign yet).

        ``alg`` defaults to the active key's algorithm. KeyFileError if a next key exists.
        """
        if any(e.state == "next" for e in self._entries):
            raise KeyFileError("a next key already exists; rotate first")
        if alg is None:
            active = [e.key.alg for e in self._entries if e.state == "active"]
            alg = active[0] if active else "EdDSA"
        if alg not in SIGNING_ALGORITHMS:
            raise KeyFileError(f"cannot generate signing keys for {alg!r:.40}")
        key = Key.generate(alg)
        self._add(_Entry(key, "next", float(now), published_at=float(now)))
        return key

    def rotate(self, *, now: float, keep_for: float = 900.0, min_lead: float = 0.0) -> Key:
        """Promote *next* to *active* (creating a next key first if none) and retire the old
        active key until ``now + keep_for``. Returns the new active key.

        ``keep_for`` must cover the longest lifetime of any token the old key signed.
        ``min_lead`` (the JWKS cache lifetime) is how long the next key must have been
        published: a key that signs before every cache holds it produces tokens verifiers
        reject, so RotationTooSoon is raised instead (also when there is no next key at all).
        Nothing changes when it is raised.
        """
        upcoming = self._next_entry()
        if min_lead > 0:
            if upcoming is None:
                raise RotationTooSoon(
                    "no next key is published yet, so none can be promoted safely",
                    wait=min_lead,
                )
            age = float(now) - upcoming.published_at
            if age < min_lead:
                raise RotationTooSoon(
                    f"the next key {upcoming.key.kid} was published {max(age, 0.0):.0f}s ago; "
                    f"JWKS caches may keep the previous key set for {min_lead:.0f}s, so "
                    "verifiers might not know it yet",
                    wait=min_lead - age,
                )
        if upcoming is None:
            self.add_next(now=now)
            upcoming = self._entries[-1]
        for entry in self._entries:
            if entry.state == "active":
                entry.state = "retired"
                entry.retire_after = float(now) + keep_for
        upcoming.state = "active"
        return upcoming.key

    def retire(self, kid: str, *, now: float, keep_for: float) -> None:
        """Retire ``kid`` until ``now + keep_for`` (0 for a compromised key, then purge).

        UnknownKey if absent. KeyFileError for the active key: retiring it would leave nothing
        to sign with, so ``rotate`` first (it retires the old active key itself). Retiring an
        already retired key can only shorten its keep time, never extend it.
        """
        entry = self._by_kid.get(kid)
        if entry is None:
            raise UnknownKey(f"no key with kid {kid!r:.70}")
        if entry.state == "active":
            raise KeyFileError(
                f"{kid} is the active signing key; rotate first, then retire it "
                "(rotation retires the old active key itself)"
            )
        until = float(now) + keep_for
        if entry.state == "retired" and entry.retire_after is not None:
            until = min(until, entry.retire_after)
        entry.state = "retired"
        entry.retire_after = until

    def purge(self, *, now: float) -> list[str]:
        """Drop retired keys whose ``retire_after`` has passed; return their kids."""
        gone = [e for e in self._entries if e.expired(float(now))]
        for entry in gone:
            self._entries.remove(entry)
            del self._by_kid[entry.key.kid]
        return [e.key.kid for e in gone]


def _import_public(entry: object) -> Key:
    """One JWKS entry, with the extra rules that apply to documents fetched from elsewhere."""
    if not isinstance(entry, Mapping):
        raise MalformedToken("JWK: entry is not an object")
    leaked = sorted(PRIVATE_MEMBERS & entry.keys())
    if leaked:
        # A JWKS is public: private members mean a leaked key (or a confused publisher).
        raise MalformedToken(f"JWK: private member {leaked[0]!r} in a public key set")
    if entry.get("kty") == "oct":
        raise MalformedToken("JWK: symmetric 'oct' keys are never accepted")
    if "alg" not in entry:
        raise MalformedToken("JWK: 'alg' is missing")
    return Key.from_jwk(entry)
