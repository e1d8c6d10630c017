"""The client registry: OIDC token endpoint auth methods and private_key_jwt key registration,
on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dojang.accounts.clients import (
    MAX_CLIENT_KEYS,
    ClientRegistry,
    InvalidClient,
    RegistryError,
    check_client_jwks,
)
from dojang.clock import FrozenClock
from dojang.jose import Key
from dojang.storage import Database

REDIRECT = "https://rp.example/callback"


@pytest.fixture
def registry(db: Database, clock: FrozenClock) -> ClientRegistry:
    """The registry on the test database."""
    return ClientRegistry(db, clock=clock)


async def _add(registry: ClientRegistry, name: str = "rp", **options: Any) -> Any:
    options.setdefault("client_type", "confidential")
    return await registry.add_oidc_client(name, redirect_uris=[REDIRECT], **options)


async def test_private_key_jwt_client_round_trips_without_a_secret(
    registry: ClientRegistry,
) -> None:
    ed, es = Key.generate("EdDSA"), Key.generate("ES256")
    client, secret = await _add(
        registry,
        token_endpoint_auth_method="private_key_jwt",
        jwks={"keys": [ed.public_jwk(), es.public_jwk()]},
    )
    assert secret is None and not client.uses_secret
    found = await registry.get_oidc_client(client.client_id)
    assert found == client
    assert found is not None and found.token_endpoint_auth_method == "private_key_jwt"
    assert json.loads(found.jwks or "") == {"keys": [ed.public_jwk(), es.public_jwk()]}


async def test_a_client_without_a_secret_cannot_authenticate_with_one(
    registry: ClientRegistry,
) -> None:
    client, _ = await _add(
        registry,
        token_endpoint_auth_method="private_key_jwt",
        jwks={"keys": [Key.generate().public_jwk()]},
    )
    public, _ = await _add(registry, "spa", client_type="public")
    for client_id in (client.client_id, public.client_id):
        for guess in ("", "-" * 64, "None"):
            with pytest.raises(InvalidClient):
                await registry.authenticate(client_id, guess)


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post", None])
async def test_secret_methods_get_a_secret(registry: ClientRegistry, method: str | None) -> None:
    client, secret = await _add(registry, token_endpoint_auth_method=method)
    assert secret and client.uses_secret
    assert client.token_endpoint_auth_method == (method or "client_secret_basic")
    assert (await registry.authenticate(client.client_id, secret)).client_id == client.client_id


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"token_endpoint_auth_method": "private_key_jwt"}, "--jwks-file"),
        ({"jwks": {"keys": []}}, "only with"),
        ({"token_endpoint_auth_method": "client_secret_jwt"}, "must be one of"),
        ({"token_endpoint_auth_method": "none"}, "--type public"),
        (
            {"client_type": "public", "token_endpoint_auth_method": "client_secret_basic"},
            "public client",
        ),
    ],
)
async def test_inconsistent_registrations_are_refused(
    registry: ClientRegistry, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(RegistryError, match=message):
        await _add(registry, **options)
    assert await registry.list_clients() == []  # nothing half-registered


def test_check_client_jwks_refuses_private_and_symmetric_keys() -> None:
    private = Key.generate().private_jwk()
    with pytest.raises(RegistryError, match=r"private member 'd'.*PUBLIC"):
        check_client_jwks({"keys": [private]})
    for member in ("p", "q", "dp", "dq", "qi", "oth"):
        with pytest.raises(RegistryError, match=f"private member '{member}'"):
            check_client_jwks({"keys": [{**Key.generate().public_jwk(), member: "AQAB"}]})
    with pytest.raises(RegistryError, match="symmetric"):
        check_client_jwks({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]})


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], '"keys" array'),
        ({"keys": {}}, '"keys" array'),
        ({"keys": []}, "1 to"),
        ({"keys": [Key.generate().public_jwk() for _ in range(MAX_CLIENT_KEYS + 1)]}, "1 to"),
        ({"keys": ["not a key"]}, "not a JSON object"),
        ({"keys": [{"kty": "OKP", "crv": "X25519", "x": "AA", "kid": "x"}]}, "Ed25519"),
    ],
)
def test_check_client_jwks_refuses_malformed_sets(document: object, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        check_client_jwks(document)


def test_check_client_jwks_infers_unambiguous_algorithms() -> None:
    ed, es = Key.generate("EdDSA"), Key.generate("ES256")
    bare = [
        {k: v for k, v in key.public_jwk().items() if k not in ("alg", "use")} for key in (ed, es)
    ]
    keys = check_client_jwks({"keys": bare})
    assert [(k.kid, k.alg) for k in keys] == [(ed.kid, "EdDSA"), (es.kid, "ES256")]
    assert not any(k.is_private for k in keys)
