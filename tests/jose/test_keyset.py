"""KeySet: key file save/load/self-test, rotation, public JWKS and hostile JWKS import."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from dojang.clock import FrozenClock
from dojang.errors import KeyFileError, MalformedToken, UnknownKey
from dojang.jose import Key, KeySet, sign_compact, verify_compact
from dojang.jose.jwk import PRIVATE_MEMBERS
from dojang.jose.keyset import RotationTooSoon

PUBLIC_MEMBERS = {"kty", "crv", "x", "y", "n", "e", "kid", "alg", "use"}


def _saved(tmp_path: Path, keyset: KeySet | None = None) -> Path:
    path = tmp_path / "keys.json"
    (keyset or KeySet.generate(now=100.0)).save(path)
    return path


def _rewrite(path: Path, change: Any) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


# --- generate / lookup --------------------------------------------------------------------------


def test_generate_has_one_active_key() -> None:
    keyset = KeySet.generate("ES256", now=5.0)
    assert len(keyset) == 1 and keyset.active.alg == "ES256" and keyset.active.is_private
    assert keyset.active.kid in keyset and "nope" not in keyset and 1 not in keyset
    assert keyset.get(keyset.active.kid) is keyset.active
    assert keyset.keys() == [keyset.active]
    assert keyset.describe() == [
        {
            "kid": keyset.active.kid,
            "alg": "ES256",
            "state": "active",
            "created_at": 5.0,
            "published_at": 5.0,
            "retire_after": None,
        }
    ]
    with pytest.raises(UnknownKey):
        keyset.get("nope")


def test_repr_shows_no_key_material() -> None:
    keyset = KeySet.generate(now=0.0)
    assert keyset.active.private_jwk()["d"] not in repr(keyset)


# --- save / load --------------------------------------------------------------------------------


def test_save_load_round_trip_and_mode(tmp_path: Path) -> None:
    keyset = KeySet.generate(now=1.0)
    keyset.add_next(now=2.0)
    keyset.rotate(now=3.0, keep_for=60.0)
    path = _saved(tmp_path, keyset)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["keys.json"]  # no temp file left behind
    loaded = KeySet.load(path)
    assert loaded.describe() == keyset.describe()
    token = sign_compact({"a": 1}, keyset.active, typ="x")
    assert verify_compact(token, loaded, ["EdDSA"])[1] == b'{"a":1}'


def test_save_replaces_existing_file_with_0600(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text("old")
    path.chmod(0o644)
    KeySet.generate(now=0.0).save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert KeySet.load(path).active.is_private


def test_save_into_missing_directory_is_key_file_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="missing"):
        KeySet.generate(now=0.0).save(tmp_path / "missing" / "keys.json")


def test_public_keyset_cannot_be_saved(tmp_path: Path) -> None:
    public = KeySet.from_jwks(KeySet.generate(now=0.0).public_jwks())
    with pytest.raises(KeyFileError):
        public.save(tmp_path / "keys.json")


def test_load_missing_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(KeyFileError, match=r"absent\.json"):
        KeySet.load(path)


@pytest.mark.parametrize(
    "content",
    [b"", b"{not json", b"[]", b'{"version":1,"version":1,"keys":[]}', b"\xff\xfe"],
)
def test_load_corrupt_file_names_it(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "keys.json"
    path.write_bytes(content)
    with pytest.raises(KeyFileError, match=r"keys\.json"):
        KeySet.load(path)


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(version=2),
        lambda d: d.update(keys=[]),
        lambda d: d.update(keys="x"),
        lambda d: d["keys"].append("x"),
        lambda d: d["keys"][0].update(state="primary"),
        lambda d: d["keys"][0].update(created_at="yesterday"),
        lambda d: d["keys"][0].update(created_at=True),
        lambda d: d["keys"][0].update(retire_after="never"),
        lambda d: d["keys"][0].update(published_at="soon"),
        lambda d: d["keys"][0].update(published_at=float("inf")),
        lambda d: d["keys"][0].update(state="retired", retire_after=None),
        lambda d: d["keys"][0].update(jwk="x"),
        lambda d: d["keys"][0]["jwk"].pop("d"),  # public only: cannot sign, fails self-test
        lambda d: d["keys"][0]["jwk"].update(kty="oct"),
        lambda d: d["keys"][0]["jwk"].update(crv="P-256"),  # wrong curve for the key
        lambda d: d["keys"].append(dict(d["keys"][0])),  # duplicate kid
    ],
)
def test_load_rejects_bad_documents(tmp_path: Path, change: Any) -> None:
    path = _saved(tmp_path)
    _rewrite(path, change)
    with pytest.raises(KeyFileError, match=r"keys\.json"):
        KeySet.load(path)


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_load_rejects_mismatched_public_private_pair(tmp_path: Path, alg: str) -> None:
    """A key whose public half is not its private half would mint unverifiable tokens."""
    path = _saved(tmp_path, KeySet.generate(alg, now=0.0))
    other = Key.generate(alg).public_jwk()

    def swap(document: dict[str, Any]) -> None:
        for name in ("x", "y"):
            if name in other:
                document["keys"][0]["jwk"][name] = other[name]

    _rewrite(path, swap)
    with pytest.raises(KeyFileError, match=r"keys\.json"):
        KeySet.load(path)


def test_load_rejects_two_active_keys(tmp_path: Path) -> None:
    keyset = KeySet.generate(now=0.0)
    keyset.add_next(now=1.0)
    path = _saved(tmp_path, keyset)
    _rewrite(path, lambda d: d["keys"][1].update(state="active"))
    with pytest.raises(KeyFileError, match="more than one"):
        KeySet.load(path)


# --- rotation --------------------------------------------------------------------------------


def test_rotation_lifecycle() -> None:
    keyset = KeySet.generate(now=0.0)
    first = keyset.active
    old_token = sign_compact({"n": 1}, first, typ="x")

    upcoming = keyset.add_next(now=10.0)
    assert keyset.active is first
    assert [k["kid"] for k in keyset.public_jwks()["keys"]] == [first.kid, upcoming.kid]
    with pytest.raises(KeyFileError):
        keyset.add_next(now=11.0)

    assert keyset.rotate(now=20.0, keep_for=100.0) is upcoming
    assert keyset.active is upcoming
    states = {row["kid"]: (row["state"], row["retire_after"]) for row in keyset.describe()}
    assert states == {first.kid: ("retired", 120.0), upcoming.kid: ("active", None)}
    assert verify_compact(old_token, keyset, ["EdDSA"])  # retired keys still verify

    assert keyset.purge(now=119.0) == []
    assert keyset.purge(now=120.0) == [first.kid]
    assert first.kid not in keyset
    with pytest.raises(UnknownKey):
        verify_compact(old_token, keyset, ["EdDSA"])


def test_rotate_without_next_creates_one() -> None:
    keyset = KeySet.generate("ES256", now=0.0)
    first = keyset.active
    new = keyset.rotate(now=5.0)
    assert new is not first and new.alg == "ES256" and keyset.active is new
    assert keyset.describe()[0]["retire_after"] == 905.0


def test_add_next_with_explicit_alg_and_bad_alg() -> None:
    keyset = KeySet.generate(now=0.0)
    assert keyset.add_next("ES256", now=1.0).alg == "ES256"
    other = KeySet.generate(now=0.0)
    with pytest.raises(KeyFileError):
        other.add_next("RS256", now=1.0)


def test_retire_refuses_the_active_key_and_unknown_kids() -> None:
    """Retiring the active key would leave nothing to sign with: rotate first."""
    keyset = KeySet.generate(now=0.0)
    active = keyset.active
    with pytest.raises(KeyFileError, match="active signing key; rotate first"):
        keyset.retire(active.kid, now=1.0, keep_for=0.0)
    assert keyset.active is active and keyset.describe()[0]["state"] == "active"
    with pytest.raises(UnknownKey):
        keyset.retire("nope", now=1.0, keep_for=0.0)
    with pytest.raises(KeyFileError, match="no active"):
        _ = KeySet().active


def test_retire_next_key_now_then_purge() -> None:
    keyset = KeySet.generate(now=0.0)
    upcoming = keyset.add_next(now=1.0)
    keyset.retire(upcoming.kid, now=2.0, keep_for=0.0)
    assert keyset.upcoming is None
    assert keyset.purge(now=2.0) == [upcoming.kid]
    assert keyset.keys() == [keyset.active]


def test_retire_never_extends_a_keep_time() -> None:
    """Retiring a retired key again (e.g. with --now) can only bring its end closer."""
    keyset = KeySet.generate(now=0.0)
    old = keyset.active
    keyset.add_next(now=0.0)
    keyset.rotate(now=10.0, keep_for=100.0)
    keyset.retire(old.kid, now=20.0, keep_for=1000.0)
    assert keyset.describe()[0]["retire_after"] == 110.0
    keyset.retire(old.kid, now=30.0, keep_for=0.0)
    assert keyset.describe()[0]["retire_after"] == 30.0
    assert keyset.purge(now=30.0) == [old.kid]


def test_load_refuses_a_file_without_an_active_key(tmp_path: Path) -> None:
    keyset = KeySet.generate(now=0.0)
    keyset.add_next(now=1.0)
    path = _saved(tmp_path, keyset)
    _rewrite(path, lambda d: d["keys"][0].update(state="retired", retire_after=50.0))
    with pytest.raises(KeyFileError, match=r"keys\.json: key file has no active key"):
        KeySet.load(path)


# --- retired keys expire at use time -------------------------------------------------------


def _rotated(now: float = 0.0, keep_for: float = 100.0) -> tuple[KeySet, Key, str]:
    """A key set whose first key was retired at ``now + 20`` until ``now + 20 + keep_for``,
    and a token that key signed."""
    keyset = KeySet.generate(now=now)
    old = keyset.active
    token = sign_compact({"n": 1}, old, typ="x")
    keyset.add_next(now=now + 10)
    keyset.rotate(now=now + 20, keep_for=keep_for)
    return keyset, old, token


def test_expired_retired_key_neither_verifies_nor_publishes_before_purge() -> None:
    """A retired (possibly compromised) key must die at its keep-until time, even if nobody
    rewrites the key file."""
    keyset, old, token = _rotated()
    assert keyset.get(old.kid, now=119.0) is old
    assert old.kid in [k["kid"] for k in keyset.public_jwks(now=119.0)["keys"]]
    with pytest.raises(UnknownKey):
        keyset.get(old.kid, now=120.0)
    published = [k["kid"] for k in keyset.public_jwks(now=120.0)["keys"]]
    assert published == [keyset.active.kid]
    held = keyset.keys()
    assert old in held  # still in the file until purged
    # Without a clock or an explicit now the views do not look at the time.
    assert verify_compact(token, keyset, ["EdDSA"])


def test_clock_of_a_loaded_key_set_drives_expiry(tmp_path: Path) -> None:
    clock = FrozenClock(1000.0)
    keyset, old, token = _rotated(now=1000.0)
    path = _saved(tmp_path, keyset)
    loaded = KeySet.load(path, clock=clock)
    assert loaded.clock is clock
    assert verify_compact(token, loaded, ["EdDSA"])  # retired, still within its keep time
    assert old.kid in loaded
    clock.advance(119.0)  # t = 1119: keep-until is 1120
    assert verify_compact(token, loaded, ["EdDSA"])
    clock.advance(1.0)
    with pytest.raises(UnknownKey):
        verify_compact(token, loaded, ["EdDSA"])
    assert old.kid not in loaded
    assert old.kid not in {k["kid"] for k in loaded.public_jwks()["keys"]}
    assert loaded.active.kid in {k["kid"] for k in loaded.public_jwks()["keys"]}
    # An explicit now overrides the clock (a caller judging another moment).
    assert loaded.get(old.kid, now=1100.0).kid == old.kid
    assert loaded.purge(now=clock.now()) == [old.kid]


def test_active_and_next_keys_never_expire() -> None:
    keyset, _, _ = _rotated()
    upcoming = keyset.add_next(now=30.0)
    far = 10.0**9
    assert keyset.get(keyset.active.kid, now=far) is keyset.active
    assert keyset.get(upcoming.kid, now=far) is upcoming
    assert len(keyset.public_jwks(now=far)["keys"]) == 2


# --- rotation lead time ---------------------------------------------------------------------


def test_rotate_refuses_a_next_key_published_too_recently() -> None:
    """A key that signs before every JWKS cache holds it mints tokens verifiers reject."""
    keyset = KeySet.generate(now=0.0)
    first = keyset.active
    upcoming = keyset.add_next(now=1000.0)
    before = keyset.describe()
    with pytest.raises(RotationTooSoon, match="published 299s ago") as caught:
        keyset.rotate(now=1299.0, min_lead=300.0)
    assert caught.value.wait == pytest.approx(1.0)
    assert isinstance(caught.value, KeyFileError)
    assert keyset.describe() == before and keyset.active is first  # nothing changed
    assert keyset.rotate(now=1300.0, min_lead=300.0) is upcoming
    # min_lead=0 (``--force``) skips the check.
    other = KeySet.generate(now=0.0)
    fresh = other.add_next(now=50.0)
    assert other.rotate(now=50.0) is fresh


def test_rotate_with_lead_time_needs_a_published_next_key() -> None:
    keyset = KeySet.generate(now=0.0)
    with pytest.raises(RotationTooSoon, match="no next key") as caught:
        keyset.rotate(now=5000.0, min_lead=300.0)
    assert caught.value.wait == 300.0
    assert keyset.upcoming is None and len(keyset) == 1


def test_published_at_is_saved_and_old_files_fall_back_to_created_at(tmp_path: Path) -> None:
    keyset = KeySet.generate(now=0.0)
    upcoming = keyset.add_next(now=40.0)
    path = _saved(tmp_path, keyset)
    document = json.loads(path.read_text())
    assert [k["published_at"] for k in document["keys"]] == [0.0, 40.0]
    # A file written before published_at existed: the next key was published when added.
    _rewrite(path, lambda d: [k.pop("published_at") for k in d["keys"]])
    loaded = KeySet.load(path)
    assert loaded.describe()[1]["published_at"] == 40.0
    with pytest.raises(RotationTooSoon):
        loaded.rotate(now=339.0, min_lead=300.0)
    assert loaded.rotate(now=340.0, min_lead=300.0).kid == upcoming.kid
    loaded.save(path)
    assert "published_at" in json.loads(path.read_text())["keys"][0]


def test_public_jwks_never_leaks_private_members() -> None:
    keyset = KeySet.generate(now=0.0)
    keyset.add_next("ES256", now=1.0)
    keyset.rotate(now=2.0)
    keyset.add_next(now=3.0)
    jwks = keyset.public_jwks()
    assert len(jwks["keys"]) == 3
    for entry in jwks["keys"]:
        assert set(entry) <= PUBLIC_MEMBERS
        assert not PRIVATE_MEMBERS & set(entry)
    held = keyset.keys()
    private_values = {k.private_jwk()["d"] for k in held}
    assert not any(value in json.dumps(jwks) for value in private_values)


# --- hostile JWKS --------------------------------------------------------------------------------


def test_from_jwks_accepts_published_keys() -> None:
    source = KeySet.generate(now=0.0)
    source.add_next("ES256", now=1.0)
    imported = KeySet.from_jwks(source.public_jwks())
    assert imported.rejected == [] and len(imported) == 2
    held = imported.keys()
    assert all(not key.is_private for key in held)
    with pytest.raises(KeyFileError):
        _ = imported.active
    token = sign_compact({"a": 1}, source.active, typ="x")
    assert verify_compact(token, imported, ["EdDSA"])


@pytest.mark.parametrize("document", [[], {"keys": {}}, {"nokeys": []}, {"keys": "x"}])
def test_from_jwks_rejects_non_documents(document: Any) -> None:
    with pytest.raises(MalformedToken):
        KeySet.from_jwks(document)


def test_from_jwks_rejects_hostile_entries_one_by_one() -> None:
    good = Key.generate("EdDSA", kid="good").public_jwk()
    dup = Key.generate("EdDSA", kid="dup").public_jwk()
    ec = Key.generate("ES256", kid="ec").public_jwk()
    entries: list[Any] = [
        good,
        "not an object",
        {**Key.generate(kid="priv").private_jwk()},
        {"kty": "oct", "kid": "sym", "alg": "HS256", "k": "AAAA"},
        {"kty": "oct", "kid": "sym2", "alg": "HS256"},
        {k: v for k, v in ec.items() if k != "alg"} | {"kid": "noalg"},
        {**ec, "kid": "enc", "use": "enc"},
        {**ec, "kid": "mismatch", "alg": "EdDSA"},
        {**ec, "kid": "p384", "crv": "P-384"},
        {**ec, "kty": "XYZ", "kid": "unknown-kty"},
        {k: v for k, v in ec.items() if k != "kid"},
        dup,
        {**Key.generate("EdDSA").public_jwk(), "kid": "dup"},
        {**Key.generate("EdDSA").public_jwk(), "kid": "dup"},
    ]
    imported = KeySet.from_jwks({"keys": entries})
    held = imported.keys()
    assert [k.kid for k in held] == ["good"]
    assert len(imported.rejected) == len(entries) - 1
    joined = "\n".join(imported.rejected)
    for needle in ("private member", "oct", "'alg' is missing", "'use'", "duplicate kid", "'kid'"):
        assert needle in joined
    with pytest.raises(UnknownKey):
        imported.get("dup")


def test_from_jwks_caps_the_number_of_keys() -> None:
    key = Key.generate("EdDSA").public_jwk()
    imported = KeySet.from_jwks({"keys": [{**key, "kid": f"k{i}"} for i in range(100)]})
    assert len(imported) == 64
    assert "more than 64" in imported.rejected[-1]
