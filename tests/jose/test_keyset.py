"""KeySet: key file save/load/self-test, rotation, public JWKS and hostile JWKS import."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from dojang.errors import KeyFileError, MalformedToken, UnknownKey
from dojang.jose import Key, KeySet, sign_compact, verify_compact
from dojang.jose.jwk import PRIVATE_MEMBERS

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


def test_retire_and_no_active_key() -> None:
    keyset = KeySet.generate(now=0.0)
    kid = keyset.active.kid
    keyset.retire(kid, now=1.0, keep_for=0.0)
    with pytest.raises(KeyFileError, match="no active"):
        _ = keyset.active
    with pytest.raises(UnknownKey):
        keyset.retire("nope", now=1.0, keep_for=0.0)
    assert keyset.purge(now=1.0) == [kid]
    assert keyset.rotate(now=2.0).is_private
    assert len(keyset) == 1


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
