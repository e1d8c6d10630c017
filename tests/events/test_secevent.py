"""SET codec: round trip, and one misuse per assertion (each would forge or confuse an event)."""

from __future__ import annotations

import pytest

from dojang.errors import InvalidClaims, InvalidToken, WrongTokenType
from dojang.events.model import Event
from dojang.events.secevent import SET_TYP, event_uri, sign_event, verify_set
from dojang.jose import KeySet, sign_compact

ISS = "https://auth.example"


@pytest.fixture
def keys() -> KeySet:
    return KeySet.generate("EdDSA")


def test_round_trip_every_kind(keys: KeySet) -> None:
    for ev in (
        Event("session.revoked", {"sid": "s1"}, 2e9, 1.8e9),
        Event("token.revoked", {"jti": "j1"}, 2e9, 1.8e9),
        Event("user.sessions_revoked", {"sub": "u1", "before": 1.8e9}, 2e9, 1.8e9),
        Event("key.retired", {"kid": "k1"}, 2e9, 1.8e9),
    ):
        token = sign_event(ev, keys.active, issuer=ISS)
        back = verify_set(token, keys.active, issuer=ISS, algorithms=("EdDSA",))
        assert (back.kind, back.data, back.exp, back.set_jws) == (ev.kind, ev.data, ev.exp, token)


def _claims(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "iss": ISS,
        "iat": 1,
        "jti": "j",
        "events": {event_uri("session.revoked"): {"sid": "s", "exp": 2e9}},
    }
    return {**base, **over}


def test_other_key_is_refused(keys: KeySet) -> None:
    other = KeySet.generate("EdDSA").active
    token = sign_event(Event("session.revoked", {"sid": "s"}, 2e9, 1), other, issuer=ISS)
    with pytest.raises(InvalidToken):
        verify_set(token, keys.active, issuer=ISS, algorithms=("EdDSA",))


def test_access_token_typ_is_not_a_set(keys: KeySet) -> None:
    with pytest.raises(WrongTokenType):
        verify_set(
            sign_compact(_claims(), keys.active, typ="at+jwt"),
            keys.active,
            issuer=ISS,
            algorithms=("EdDSA",),
        )


def test_wrong_issuer(keys: KeySet) -> None:
    with pytest.raises(InvalidClaims):
        verify_set(
            sign_compact(_claims(iss="https://evil"), keys.active, typ=SET_TYP),
            keys.active,
            issuer=ISS,
            algorithms=("EdDSA",),
        )


def test_two_events_in_one_set(keys: KeySet) -> None:
    events = {
        event_uri("session.revoked"): {"sid": "s", "exp": 1.0},
        event_uri("token.revoked"): {"jti": "j", "exp": 1.0},
    }
    with pytest.raises(InvalidClaims):
        verify_set(
            sign_compact(_claims(events=events), keys.active, typ=SET_TYP),
            keys.active,
            issuer=ISS,
            algorithms=("EdDSA",),
        )


def test_unknown_event_uri(keys: KeySet) -> None:
    events = {"https://dojang.dev/event/session.restored": {"sid": "s", "exp": 1.0}}
    with pytest.raises(InvalidClaims):
        verify_set(
            sign_compact(_claims(events=events), keys.active, typ=SET_TYP),
            keys.active,
            issuer=ISS,
            algorithms=("EdDSA",),
        )


def test_payload_missing_id(keys: KeySet) -> None:
    events = {event_uri("session.revoked"): {"exp": 1.0}}
    with pytest.raises(InvalidClaims):
        verify_set(
            sign_compact(_claims(events=events), keys.active, typ=SET_TYP),
            keys.active,
            issuer=ISS,
            algorithms=("EdDSA",),
        )
