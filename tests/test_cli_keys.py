"""``dojang keys``: rotation lead time, retire (and ``--now`` for a compromised key), purge.

Each scenario checks the key file, the audit trail and what a server built on the same data
directory does with a token signed by the key in question (its JWKS, its own verifier and
introspection), so a key that should be dead is shown to be dead where it matters.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from dojang.cli import app
from dojang.clock import FrozenClock
from dojang.errors import RevokedToken, UnknownKey
from dojang.events.bus import EventSigner
from dojang.jose import KeySet
from dojang.server.routes.tokens import JWKS_MAX_AGE
from dojang.tokens import Issuer
from dojang.verify import Verifier
from tests.events.live import LiveServer, wait_until
from tests.server.conftest import Env, make_env
from tests.test_cli import _env, runner

AUDIENCE = "orders-api"


# --- helpers -----------------------------------------------------------------------------------


def _keys(tmp_path: Path) -> Path:
    return tmp_path / "data" / "keys.json"


def _entries(path: Path) -> dict[str, dict[str, Any]]:
    """The key file's entries by kid."""
    return {e["jwk"]["kid"]: e for e in json.loads(path.read_text())["keys"]}


def _kid(path: Path, state: str) -> str:
    return next(kid for kid, e in _entries(path).items() if e["state"] == state)


def _shift(path: Path, field: str, seconds: float, state: str | None = None) -> None:
    """Move ``field`` of every entry (in ``state``) ``seconds`` into the past: the CLI runs on
    the wall clock, so time passing is simulated by back-dating the file."""
    document = json.loads(path.read_text())
    for entry in document["keys"]:
        if (state is None or entry["state"] == state) and entry.get(field) is not None:
            entry[field] -= seconds
    path.write_text(json.dumps(document))


def _out(result: Any) -> str:
    """The command's output with rich's line wrapping undone."""
    return " ".join(str(result.output).split())


def _invoke(tmp_path: Path, *args: str, ok: bool = True) -> Any:
    # Kids are base64url and may start with "-": they always follow "--" here, as an operator
    # must write them too.
    result = runner.invoke(app, list(args), env=_env(tmp_path))
    if ok:
        assert result.exit_code == 0, _out(result)
    assert "Traceback" not in _out(result)
    return result


def _init_and_rotate(tmp_path: Path) -> tuple[KeySet, str]:
    """``init``, wait out the lead time, ``rotate``: return what an attacker who stole the
    first key would hold (a key set in which it signs) and its kid, now retired."""
    _invoke(tmp_path, "init")
    path = _keys(tmp_path)
    stolen_copy = tmp_path / "stolen.json"
    shutil.copy(path, stolen_copy)
    stolen = KeySet.load(stolen_copy)
    _shift(path, "published_at", JWKS_MAX_AGE)
    _invoke(tmp_path, "keys", "rotate")
    assert _entries(path)[stolen.active.kid]["state"] == "retired"
    return stolen, stolen.active.kid


def _audit(tmp_path: Path) -> list[dict[str, Any]]:
    found = _invoke(tmp_path, "audit", "search", "--action", "key.", "--json")
    return [json.loads(line) for line in found.output.splitlines()]


def _forge(stolen: KeySet, issuer: str, clock: FrozenClock) -> str:
    """A service token minted with the stolen key at the clock's time."""
    return Issuer(stolen, issuer=issuer, clock=clock).service_token(
        client_id="batch", audience=AUDIENCE, scope=""
    )


async def _introspector(srv: Env) -> dict[str, str]:
    """Register the audience and a client that serves it; return its Basic auth header."""
    await srv.services.clients.add_audience(AUDIENCE, "orders:read")
    client, secret = await srv.services.clients.add_client(
        "orders-service", grants={}, serves=AUDIENCE
    )
    raw = f"{client.client_id}:{secret}".encode()
    return {"authorization": "Basic " + base64.b64encode(raw).decode()}


async def _server_view(srv: Env, auth: dict[str, str], token: str, kid: str) -> tuple[bool, bool]:
    """(is ``kid`` in the server's JWKS, does introspection call ``token`` active)."""
    jwks = (await srv.client.get("/.well-known/jwks.json")).json()
    published = kid in {k["kid"] for k in jwks["keys"]}
    answer = await srv.client.post("/oauth2/introspect", data={"token": token}, headers=auth)
    assert answer.status_code == 200
    return published, bool(answer.json()["active"])


# --- keep-until and purge ------------------------------------------------------------------------


def test_retired_key_dies_at_its_keep_until_time_before_any_purge(tmp_path: Path) -> None:
    """A retired key whose keep time is over must not verify a token minted with it (e.g. by
    someone who stole it), even though nobody has purged it from keys.json yet."""
    stolen, old = _init_and_rotate(tmp_path)
    keep_until = float(_entries(_keys(tmp_path))[old]["retire_after"])

    async def scenario() -> None:
        clock = FrozenClock(keep_until - 1)
        async for srv in make_env(tmp_path, clock):
            auth = await _introspector(srv)
            token = _forge(stolen, srv.settings.issuer, clock)
            assert await _server_view(srv, auth, token, old) == (True, True)
            assert srv.services.verifier_for(AUDIENCE).verify(token)["sub"] == "batch"

            clock.set(keep_until)
            token = _forge(stolen, srv.settings.issuer, clock)  # fresh, so not expired
            assert await _server_view(srv, auth, token, old) == (False, False)
            with pytest.raises(UnknownKey):
                srv.services.verifier_for(AUDIENCE).verify(token)
            # The active key is unaffected.
            good = srv.services.issuer.service_token(client_id="b", audience=AUDIENCE, scope="")
            assert srv.services.verifier_for(AUDIENCE).verify(good)["sub"] == "b"

    asyncio.run(scenario())
    assert old in _entries(_keys(tmp_path))  # dead at use time, still in the file


def test_keys_purge_removes_expired_keys_and_is_audited(tmp_path: Path) -> None:
    _, old = _init_and_rotate(tmp_path)
    path = _keys(tmp_path)
    nothing = _invoke(tmp_path, "keys", "purge")
    assert "nothing purged" in _out(nothing) and old in _entries(path)

    _shift(path, "retire_after", 10_000, state="retired")
    assert "expired" in _out(_invoke(tmp_path, "keys", "list"))
    result = _invoke(tmp_path, "keys", "purge")
    assert f"purged expired retired key {old}" in _out(result)
    assert old not in _entries(path)
    assert {"active", "next"} == {e["state"] for e in _entries(path).values()}
    assert KeySet.load(path).active.kid == _kid(path, "active")  # still a valid key file
    purged = [r for r in _audit(tmp_path) if r["action"] == "key.purged"]
    assert [r["subject"] for r in purged] == [old]
    assert purged[0]["actor"].startswith("cli")


def test_rotate_and_retire_purge_expired_keys_whenever_they_write(tmp_path: Path) -> None:
    _, first = _init_and_rotate(tmp_path)
    path = _keys(tmp_path)
    second = _kid(path, "active")
    _shift(path, "retire_after", 10_000, state="retired")
    _shift(path, "published_at", JWKS_MAX_AGE, state="next")
    rotated = _invoke(tmp_path, "keys", "rotate")
    assert f"purged expired retired key {first}" in _out(rotated)
    assert first not in _entries(path) and _entries(path)[second]["state"] == "retired"

    _shift(path, "retire_after", 10_000, state="retired")
    upcoming = _kid(path, "next")
    retired = _invoke(tmp_path, "keys", "retire", "--", upcoming)
    assert f"purged expired retired key {second}" in _out(retired)
    assert set(_entries(path)) == {_kid(path, "active"), upcoming}
    actions = [(r["action"], r["subject"]) for r in _audit(tmp_path)]
    assert ("key.purged", first) in actions and ("key.purged", second) in actions
    assert ("key.retired", upcoming) in actions


# --- retire ----------------------------------------------------------------------------------


def test_retiring_the_active_key_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    _invoke(tmp_path, "init")
    path = _keys(tmp_path)
    before = path.read_bytes()
    active = _kid(path, "active")
    result = _invoke(tmp_path, "keys", "retire", "--", active, ok=False)
    assert result.exit_code == 1
    assert "active signing key; rotate first" in _out(result)
    assert path.read_bytes() == before
    now = _invoke(tmp_path, "keys", "retire", "--now", "--", active, ok=False)
    assert now.exit_code == 1 and path.read_bytes() == before
    unknown = _invoke(tmp_path, "keys", "retire", "no-such-kid", ok=False)
    assert unknown.exit_code == 1 and "no-such-kid" in _out(unknown)
    assert path.read_bytes() == before
    assert not [r for r in _audit(tmp_path) if r["action"] == "key.retired"]


def test_a_kid_starting_with_a_dash_is_taken_as_the_kid(tmp_path: Path) -> None:
    """Base64url kids may begin with "-"; the operator need not know to write "--" first."""
    _invoke(tmp_path, "init")
    path = _keys(tmp_path)
    document = json.loads(path.read_text())
    for entry in document["keys"]:
        if entry["state"] == "next":
            entry["jwk"]["kid"] = "-dash-kid"
    path.write_text(json.dumps(document))
    result = _invoke(tmp_path, "keys", "retire", "-dash-kid", "--now")
    assert "retired and purged -dash-kid" in _out(result)
    assert "-dash-kid" not in _entries(path)


def test_key_file_without_an_active_key_is_a_clear_error(tmp_path: Path) -> None:
    _invoke(tmp_path, "init")
    path = _keys(tmp_path)
    document = json.loads(path.read_text())
    for entry in document["keys"]:
        if entry["state"] == "active":
            entry.update(state="retired", retire_after=time.time() + 600)
    path.write_text(json.dumps(document))
    result = _invoke(tmp_path, "keys", "list", ok=False)
    assert result.exit_code == 1
    assert "keys.json" in _out(result) and "no active key" in _out(result)


def test_retire_now_cuts_a_compromised_key_off_and_publishes_key_retired(tmp_path: Path) -> None:
    """``retire --now``: the key leaves the file at once, the server stops trusting it, and a
    signed key.retired event is in the log for subscribers."""
    stolen, old = _init_and_rotate(tmp_path)
    path = _keys(tmp_path)
    result = _invoke(tmp_path, "keys", "retire", "--now", "--", old)
    assert f"retired and purged {old}" in _out(result)
    assert old not in _entries(path)
    records = [r for r in _audit(tmp_path) if r["subject"] == old]
    retired = next(r for r in records if r["action"] == "key.retired")
    assert retired["detail"]["immediate"] is True
    assert {"key.retired", "key.purged"} <= {r["action"] for r in records}

    async def scenario() -> None:
        clock = FrozenClock(time.time())
        async for srv in make_env(tmp_path, clock):
            events = await srv.services.events.since(0, now=clock.now())
            (event,) = [e for e in events if e.kind == "key.retired"]
            assert event.data == {"kid": old} and event.exp > clock.now() + 900
            signer = EventSigner(srv.services.keyset, issuer=srv.settings.issuer)
            assert signer.verify(event.set_jws).data == {"kid": old}  # genuine, signed SET
            auth = await _introspector(srv)
            token = _forge(stolen, srv.settings.issuer, clock)
            assert await _server_view(srv, auth, token, old) == (False, False)
            with pytest.raises(UnknownKey):
                srv.services.verifier_for(AUDIENCE).verify(token)

    asyncio.run(scenario())


def test_retire_now_reaches_subscribed_verifiers_at_once(tmp_path: Path) -> None:
    """A verifier whose JWKS still lists the compromised key refuses its tokens as soon as the
    key.retired event arrives over the revocation feed (no JWKS refresh needed)."""
    data = tmp_path / "data"
    server = LiveServer(data).start()
    try:
        env = {**_env(tmp_path), "DOJANG_PUBLIC_URL": server.base_url}  # same issuer
        path = data / "keys.json"
        stolen = KeySet.load(path)
        old = stolen.active.kid
        rotated = runner.invoke(app, ["keys", "rotate", "--force"], env=env)
        assert rotated.exit_code == 0, _out(rotated)
        clock = FrozenClock(time.time())
        token = _forge(stolen, server.settings.issuer, clock)
        with Verifier(
            issuer=server.settings.issuer,
            audience=AUDIENCE,
            jwks=KeySet.load(path).public_jwks(),  # a snapshot: still lists the old key
            revocations=f"{server.base_url}/events/revocations",
        ) as verifier:
            assert verifier.verify(token)["sub"] == "batch"
            result = runner.invoke(app, ["keys", "retire", "--now", "--", old], env=env)
            assert result.exit_code == 0, _out(result)

            def refused() -> bool:
                try:
                    verifier.verify(token)
                except RevokedToken:
                    return True
                return False

            wait_until(refused, what="key.retired pushed to the verifier")
            assert verifier.subscription is not None
            assert verifier.subscription.is_key_retired(old)
        # The live server dropped the key from its JWKS too (it reloads keys.json).
        wait_until(
            lambda: old not in httpx.get(f"{server.base_url}/.well-known/jwks.json").text,
            what="the live server's JWKS to drop the key",
        )
    finally:
        server.stop()


# --- rotation lead time --------------------------------------------------------------------------


def test_rotate_too_soon_is_refused_unless_forced(tmp_path: Path) -> None:
    """A next key published less than the JWKS max-age ago may be missing from caches: its
    tokens would be rejected, so rotation waits (or is forced on purpose)."""
    _invoke(tmp_path, "init")
    path = _keys(tmp_path)
    before = path.read_bytes()
    active, upcoming = _kid(path, "active"), _kid(path, "next")
    refused = _invoke(tmp_path, "keys", "rotate", ok=False)
    assert refused.exit_code == 1
    output = _out(refused)
    assert "published" in output and "--force" in output and f"{JWKS_MAX_AGE}s" in output
    assert path.read_bytes() == before

    forced = _invoke(tmp_path, "keys", "rotate", "--force")
    assert upcoming in _out(forced)
    entries = _entries(path)
    assert entries[upcoming]["state"] == "active" and entries[active]["state"] == "retired"
    rotated = [r for r in _audit(tmp_path) if r["action"] == "key.rotated"]
    assert [(r["subject"], r["detail"]["force"]) for r in rotated] == [(upcoming, True)]


def test_rotate_after_the_lead_time_needs_no_force(tmp_path: Path) -> None:
    _invoke(tmp_path, "init")
    path = _keys(tmp_path)
    upcoming = _kid(path, "next")
    _shift(path, "published_at", JWKS_MAX_AGE - 5)
    assert _invoke(tmp_path, "keys", "rotate", ok=False).exit_code == 1  # 5 s short
    _shift(path, "published_at", 5)
    _invoke(tmp_path, "keys", "rotate")
    assert _kid(path, "active") == upcoming
    assert _entries(path)[_kid(path, "next")]["published_at"] > time.time() - 60


def test_rotate_with_no_next_key_publishes_one_first(tmp_path: Path) -> None:
    """A key file with no next key (an older file, or the next key was retired): rotating
    would make an unpublished key sign, so a next key is published and rotation deferred."""
    _invoke(tmp_path, "init")
    path = _keys(tmp_path)
    active = _kid(path, "active")
    _invoke(tmp_path, "keys", "retire", "--now", "--", _kid(path, "next"))
    result = _invoke(tmp_path, "keys", "rotate", ok=False)
    assert result.exit_code == 1 and "again" in _out(result)
    assert _kid(path, "active") == active
    published = _kid(path, "next")
    assert ("key.published", published) in [(r["action"], r["subject"]) for r in _audit(tmp_path)]
    _shift(path, "published_at", JWKS_MAX_AGE)
    _invoke(tmp_path, "keys", "rotate")
    assert _kid(path, "active") == published


def test_older_key_files_without_published_at_still_load(tmp_path: Path) -> None:
    _invoke(tmp_path, "init")
    path = _keys(tmp_path)
    document = json.loads(path.read_text())
    for entry in document["keys"]:
        entry.pop("published_at")
        entry["created_at"] -= JWKS_MAX_AGE  # an old file, written long ago
    path.write_text(json.dumps(document))
    assert "active" in _out(_invoke(tmp_path, "keys", "list"))
    _invoke(tmp_path, "keys", "rotate")  # the fallback (created_at) counts as published
    assert all("published_at" in e for e in _entries(path).values())
