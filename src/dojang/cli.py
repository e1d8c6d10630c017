"""The ``dojang`` command line: init, serve, users, sessions, keys.

Every command loads the same validated ``Settings`` as the server; configuration mistakes
print one clear message per problem and exit with status 2, never a traceback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import getpass
import json
import os
import secrets
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from dojang.config import Settings, load_settings
from dojang.errors import DojangError
from dojang.logs import uvicorn_log_config

if TYPE_CHECKING:
    from dojang.events import Event
    from dojang.jose import KeySet

T = TypeVar("T")

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="dojang: session-first authentication server."
)
users_app = typer.Typer(no_args_is_help=True, help="Manage user accounts.")
sessions_app = typer.Typer(no_args_is_help=True, help="Inspect and end sessions.")
keys_app = typer.Typer(no_args_is_help=True, help="Signing keys: list, rotate, retire, purge.")
app.add_typer(users_app, name="users")
app.add_typer(sessions_app, name="sessions")
clients_app = typer.Typer(no_args_is_help=True, help="Service clients (OAuth 2.0).")
audiences_app = typer.Typer(no_args_is_help=True, help="APIs that accept dojang tokens.")
app.add_typer(keys_app, name="keys")
app.add_typer(clients_app, name="clients")
app.add_typer(audiences_app, name="audiences")
audit_app = typer.Typer(no_args_is_help=True, help="The audit trail.")
app.add_typer(audit_app, name="audit")

out = Console()
err = Console(stderr=True)

DataDirOpt = typer.Option(None, "--data-dir", help="Data directory (DOJANG_DATA_DIR).")
JwksFileOpt = typer.Option(
    None, "--jwks-file", help="private_key_jwt: JWKS file with the client's PUBLIC keys."
)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _settings(**flags: Any) -> Settings:
    try:
        return load_settings(flags)
    except DojangError as exc:
        _fail(str(exc))
        raise AssertionError("unreachable") from None


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except DojangError as exc:
        _fail(str(exc), 1)
        raise AssertionError("unreachable") from None


async def _with_services(settings: Settings, fn: Callable[[Any], Awaitable[T]]) -> T:
    from dojang.server.services import build_services

    svc = await build_services(settings)
    try:
        return await fn(svc)
    finally:
        await svc.close()


def _operator() -> str:
    """Who ran the command, for the audit trail (the OS account; no secrets)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _read_password(from_stdin: bool, confirm: bool = True) -> str:
    """Passwords come from a prompt or stdin, never from argv (argv is visible in ``ps``)."""
    if from_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if confirm and getpass.getpass("Repeat password: ") != first:
        _fail("passwords do not match")
    return first


# --- init / serve -----------------------------------------------------------------------------


@app.command()
def init(data_dir: Path | None = DataDirOpt) -> None:
    """Create the data directory, the database (migrated) and the signing keys."""
    settings = _settings(data_dir=data_dir)

    async def go(svc: Any) -> None:
        return None

    _run(_with_services(settings, go))
    out.print(
        f"initialised {settings.data_dir.resolve()} "
        f"(database {settings.effective_database_url.split('://', 1)[0]})"
    )


DEMO_USER = "demo"
DEMO_AUDIENCE = "demo-api"
DEMO_SCOPES = "demo:read demo:write"


async def ensure_demo_user(svc: Any, data_dir: Path) -> str:
    """Create the demo user once; keep its password in ``<data dir>/demo-password`` (0600)."""
    path = data_dir / "demo-password"
    password = path.read_text().strip() if path.exists() else None
    user = await svc.accounts.get_by_username(DEMO_USER)
    if user is None or password is None:
        password = secrets.token_urlsafe(12)
        if user is None:
            await svc.accounts.create_user(DEMO_USER, password)
        else:
            await svc.accounts.set_password(DEMO_USER, password)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(password + "\n")
    if await svc.clients.get_audience(DEMO_AUDIENCE) is None:
        await svc.clients.add_audience(DEMO_AUDIENCE, DEMO_SCOPES)
    return password


@app.command()
def serve(
    host: str | None = typer.Option(None, "--host", help="Bind address (DOJANG_HOST)."),
    port: int | None = typer.Option(None, "--port", help="Port (DOJANG_PORT)."),
    public_url: str | None = typer.Option(None, "--public-url", help="DOJANG_PUBLIC_URL"),
    data_dir: Path | None = DataDirOpt,
    workers: int | None = typer.Option(None, "--workers", help="Worker processes."),
    demo: bool = typer.Option(False, "--demo", help="Create and print a demo user."),
) -> None:
    """Serve dojang (initialises the data directory on first run)."""
    import uvicorn

    settings = _settings(
        host=host,
        port=port,
        public_url=public_url,
        data_dir=data_dir,
        workers=workers,
        demo=demo or None,
    )

    async def prepare(svc: Any) -> str | None:
        if settings.demo:
            return await ensure_demo_user(svc, settings.data_dir)
        return None

    # Migrations and keys are prepared once here, before any worker starts.
    demo_password = _run(_with_services(settings, prepare))
    if demo_password is not None:
        out.print(f"demo user: {DEMO_USER}", highlight=False)
        out.print(f"demo password: {demo_password}", highlight=False)
    out.print(
        f"dojang listening on {settings.public_url} (data in {settings.data_dir.resolve()})",
        highlight=False,
    )
    common: dict[str, Any] = dict(
        log_config=uvicorn_log_config(settings.log_level),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        proxy_headers=False,
        server_header=False,
        access_log=False,
    )
    if settings.workers == 1:
        from dojang.server import create_app

        uvicorn.run(create_app(settings), **common)
        return
    # Several workers re-read the settings from the environment: pass the flags through it.
    for key, value in dict(
        host=host, port=port, public_url=public_url, data_dir=data_dir, workers=workers
    ).items():
        if value is not None:
            os.environ[f"DOJANG_{key.upper()}"] = str(value)
    uvicorn.run(
        "dojang.server.factory:app_from_env", factory=True, workers=settings.workers, **common
    )


# --- users ------------------------------------------------------------------------------------


@users_app.command("add")
def users_add(
    username: str,
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from stdin."
    ),
    data_dir: Path | None = DataDirOpt,
) -> None:
    """Create a user; the password is prompted for (or read from stdin)."""
    settings = _settings(data_dir=data_dir)
    password = _read_password(password_stdin)

    async def go(svc: Any) -> Any:
        user = await svc.accounts.create_user(username, password)
        await svc.audit.record("user.created", actor=_operator(), subject=user.id)
        return user

    user = _run(_with_services(settings, go))
    out.print(f"created user {user.username} (id {user.id})", highlight=False)


@users_app.command("list")
def users_list(data_dir: Path | None = DataDirOpt) -> None:
    """List users."""
    settings = _settings(data_dir=data_dir)
    users = _run(_with_services(settings, lambda s: s.accounts.list_users()))
    table = Table("id", "username", "status", "created")
    for u in users:
        table.add_row(
            u.id, u.username, "disabled" if u.disabled else "active", _fmt_time(u.created_at)
        )
    out.print(table)


@users_app.command("disable")
def users_disable(username: str, data_dir: Path | None = DataDirOpt) -> None:
    """Disable a user and end every one of their sessions."""
    settings = _settings(data_dir=data_dir)

    async def go(svc: Any) -> int:
        user = await svc.accounts.get_by_username(username)
        live = len(await svc.sessions.list_for_user(user.id)) if user else 0
        disabled = await svc.accounts.disable(username)  # the accounts hook ends every session
        await svc.audit.record("user.disabled", actor=_operator(), subject=disabled.id, ended=live)
        return live

    ended = _run(_with_services(settings, go))
    out.print(f"disabled {username}; ended {ended} session(s)", highlight=False)


@users_app.command("enable")
def users_enable(username: str, data_dir: Path | None = DataDirOpt) -> None:
    """Enable a disabled user."""
    settings = _settings(data_dir=data_dir)

    async def go(svc: Any) -> None:
        user = await svc.accounts.enable(username)
        await svc.audit.record("user.enabled", actor=_operator(), subject=user.id)

    _run(_with_services(settings, go))
    out.print(f"enabled {username}", highlight=False)


@users_app.command("set-password")
def users_set_password(
    username: str,
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from stdin."
    ),
    data_dir: Path | None = DataDirOpt,
) -> None:
    """Change a user's password; every session of that user ends."""
    settings = _settings(data_dir=data_dir)
    password = _read_password(password_stdin)

    async def go(svc: Any) -> int:
        user = await svc.accounts.get_by_username(username)
        live = len(await svc.sessions.list_for_user(user.id)) if user else 0
        changed = await svc.accounts.set_password(username, password)  # ends every session
        await svc.audit.record(
            "user.password_changed", actor=_operator(), subject=changed.id, ended=live
        )
        return live

    ended = _run(_with_services(settings, go))
    out.print(f"password changed for {username}; ended {ended} session(s)", highlight=False)


# --- sessions ---------------------------------------------------------------------------------


@sessions_app.command("list")
def sessions_list(username: str, data_dir: Path | None = DataDirOpt) -> None:
    """List a user's live sessions."""
    settings = _settings(data_dir=data_dir)

    async def go(svc: Any) -> list[Any]:
        user = await svc.accounts.get_by_username(username)
        if user is None:
            _fail(f"no user {username!r}", 1)
        result: list[Any] = await svc.sessions.list_for_user(user.id)
        return result

    sessions = _run(_with_services(settings, go))
    table = Table("sid", "created", "last seen", "expires", "ip", "user agent")
    for s in sessions:
        table.add_row(
            s.sid,
            _fmt_time(s.created_at),
            _fmt_time(s.last_seen),
            _fmt_time(s.expires_at),
            s.ip or "",
            (s.user_agent or "")[:40],
        )
    out.print(table)


@sessions_app.command("revoke")
def sessions_revoke(sid: str, data_dir: Path | None = DataDirOpt) -> None:
    """End a session by its public id."""
    settings = _settings(data_dir=data_dir)

    async def go(svc: Any) -> bool:
        session = await svc.sessions.store.get_by_sid(sid)
        if session is None or not await svc.sessions.revoke(sid):
            return False
        await svc.audit.record(
            "session.revoked", actor=_operator(), subject=session.user_id, sid=sid, via="cli"
        )
        return True

    ended = _run(_with_services(settings, go))
    if not ended:
        _fail(f"no live session {sid!r}", 1)
    out.print(f"ended session {sid}", highlight=False)


# --- audiences and clients -------------------------------------------------------------------


@audiences_app.command("add")
def audiences_add(
    name: str,
    scopes: str = typer.Option(
        "", "--scopes", help='Space-separated scopes, e.g. "orders:read orders:write".'
    ),
    data_dir: Path | None = DataDirOpt,
) -> None:
    """Register an API that accepts dojang access tokens."""
    settings = _settings(data_dir=data_dir)

    async def go(svc: Any) -> Any:
        added = await svc.clients.add_audience(name, scopes)
        await svc.audit.record(
            "audience.added", actor=_operator(), subject=name, scopes=" ".join(sorted(added.scopes))
        )
        return added

    aud = _run(_with_services(settings, go))
    out.print(
        f"audience {aud.name} with scopes: {' '.join(sorted(aud.scopes)) or '(none)'}",
        highlight=False,
    )


@audiences_app.command("list")
def audiences_list(data_dir: Path | None = DataDirOpt) -> None:
    """List registered audiences."""
    settings = _settings(data_dir=data_dir)
    table = Table("audience", "scopes")
    for aud in _run(_with_services(settings, lambda s: s.clients.list_audiences())):
        table.add_row(aud.name, " ".join(sorted(aud.scopes)))
    out.print(table)


@audiences_app.command("remove")
def audiences_remove(name: str, data_dir: Path | None = DataDirOpt) -> None:
    """Remove an audience: no new tokens are minted for it."""
    settings = _settings(data_dir=data_dir)

    async def go(svc: Any) -> bool:
        removed: bool = await svc.clients.remove_audience(name)
        if removed:
            await svc.audit.record("audience.removed", actor=_operator(), subject=name)
        return removed

    if not _run(_with_services(settings, go)):
        _fail(f"no audience {name!r}", 1)
    out.print(f"removed audience {name}", highlight=False)


def _parse_grants(grants: list[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for grant in grants:
        audience, sep, scopes = grant.partition("=")
        if not sep or not audience:
            _fail(f'--grant takes AUDIENCE="scope scope", got {grant!r}')
        parsed[audience] = scopes
    return parsed


@clients_app.command("add")
def clients_add(
    name: str,
    grant: list[str] = typer.Option(  # noqa: B008 - typer's documented list option form
        [], "--grant", help='AUDIENCE="scopes" the client may request (repeatable).'
    ),
    serves: str | None = typer.Option(
        None, "--serves", help="The audience this client runs (enables token exchange)."
    ),
    client_type: str | None = typer.Option(
        None, "--type", help="OpenID Connect relying party: confidential or public."
    ),
    redirect_uri: list[str] = typer.Option(  # noqa: B008 - typer's documented list option form
        [], "--redirect-uri", help="Exact redirect URI of an OIDC client (repeatable)."
    ),
    backchannel_logout_uri: str | None = typer.Option(
        None, "--backchannel-logout-uri", help="Where dojang POSTs logout tokens."
    ),
    post_logout_redirect_uri: list[str] = typer.Option(  # noqa: B008
        [], "--post-logout-redirect-uri", help="Allowed after RP-initiated logout (repeatable)."
    ),
    first_party: bool = typer.Option(
        False, "--first-party", help="Trusted first-party app: no consent screen."
    ),
    auth_method: str | None = typer.Option(
        None,
        "--token-endpoint-auth-method",
        help="OIDC client: client_secret_basic (default), client_secret_post or private_key_jwt.",
    ),
    jwks_file: Path | None = JwksFileOpt,
    data_dir: Path | None = DataDirOpt,
) -> None:
    """Register a service client; its secret is printed once and stored hashed.

    With ``--type`` / ``--redirect-uri`` it is an OpenID Connect relying party instead;
    ``--token-endpoint-auth-method private_key_jwt --jwks-file keys.json`` registers one that
    authenticates with a signed JWT (no secret at all).
    """
    settings = _settings(data_dir=data_dir)
    grants = _parse_grants(grant)
    if client_type is not None or redirect_uri or auth_method or jwks_file:
        jwks = _read_client_jwks(jwks_file) if jwks_file is not None else None
        _clients_add_oidc(
            settings,
            name,
            client_type=client_type or "confidential",
            redirect_uris=redirect_uri,
            backchannel_logout_uri=backchannel_logout_uri,
            post_logout_redirect_uris=post_logout_redirect_uri,
            first_party=first_party,
            grants=grants,
            token_endpoint_auth_method=auth_method,
            jwks=jwks,
        )
        return

    async def go(svc: Any) -> Any:
        added = await svc.clients.add_client(name, grants=grants, serves=serves)
        await svc.audit.record(
            "client.added",
            actor=_operator(),
            subject=added[0].client_id,
            name=name,
            grants=grants,
            serves=serves,
        )
        return added

    client, secret = _run(_with_services(settings, go))
    out.print(f"client_id: {client.client_id}", highlight=False)
    out.print(f"client_secret: {secret}", highlight=False)
    err.print("The secret is shown only now; dojang keeps only its hash.", highlight=False)


MAX_JWKS_FILE_BYTES = 64 * 1024


def _read_client_jwks(path: Path) -> dict[str, object]:
    """Read and check a client's JWKS file; exit 2 with the reason on any problem.

    Checked here, before the database is opened, so a private key pasted by mistake is refused
    without side effects (the registry checks again when it stores the keys).
    """
    from dojang.accounts.clients import check_client_jwks
    from dojang.jose import parse_json_object

    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_JWKS_FILE_BYTES + 1)
    except OSError as exc:
        _fail(f"--jwks-file {path}: cannot read ({exc.strerror})")
        raise AssertionError("unreachable") from None
    if len(data) > MAX_JWKS_FILE_BYTES:
        _fail(f"--jwks-file {path}: larger than {MAX_JWKS_FILE_BYTES // 1024} KiB")
    try:
        document = parse_json_object(data, "JWKS file")
        check_client_jwks(document)
    except DojangError as exc:
        _fail(f"--jwks-file {path}: {exc}")
        raise AssertionError("unreachable") from None
    return document


def _print_client_keys(client: Any) -> None:
    """``keys: kid (alg), …`` of a private_key_jwt client."""
    from dojang.oidc.client_auth import client_keys

    kids = ", ".join(f"{k['kid']} ({k['alg']})" for k in client_keys(client).describe())
    out.print(f"keys: {kids}", highlight=False)


def _clients_add_oidc(settings: Settings, name: str, **options: Any) -> None:
    """Register an OIDC relying party (``clients add --type …``)."""

    async def go(svc: Any) -> Any:
        added = await svc.clients.add_oidc_client(name, **options)
        client = added[0]
        await svc.audit.record(
            "client.added",
            actor=_operator(),
            subject=client.client_id,
            name=name,
            client_type=options["client_type"],
            redirect_uris=list(options["redirect_uris"]),
            auth_method=client.token_endpoint_auth_method,
        )
        return added

    from dojang.accounts.clients import PRIVATE_KEY_JWT

    client, secret = _run(_with_services(settings, go))
    out.print(f"client_id: {client.client_id}", highlight=False)
    out.print(f"token_endpoint_auth_method: {client.token_endpoint_auth_method}", highlight=False)
    if client.token_endpoint_auth_method == PRIVATE_KEY_JWT:
        _print_client_keys(client)
        err.print(
            "No secret: the client authenticates with a JWT signed by one of these keys.",
            highlight=False,
        )
        return
    if secret is None:
        err.print("Public client: no secret; it must use PKCE (S256).", highlight=False)
        return
    out.print(f"client_secret: {secret}", highlight=False)
    err.print("The secret is shown only now; dojang keeps only its hash.", highlight=False)


@clients_app.command("set-keys")
def clients_set_keys(
    name: str,
    jwks_file: Path = typer.Option(  # noqa: B008 - typer's documented option form
        ..., "--jwks-file", help="JWKS file with the client's new PUBLIC keys."
    ),
    data_dir: Path | None = DataDirOpt,
) -> None:
    """Replace the keys of a private_key_jwt client (rotate: old+new first, then new only)."""
    settings = _settings(data_dir=data_dir)
    jwks = _read_client_jwks(jwks_file)

    async def go(svc: Any) -> Any:
        client = await svc.clients.set_oidc_jwks(name, jwks)
        await svc.audit.record("client.keys_replaced", actor=_operator(), subject=client.client_id)
        return client

    client = _run(_with_services(settings, go))
    out.print(f"client_id: {client.client_id}", highlight=False)
    _print_client_keys(client)


@clients_app.command("list")
def clients_list(data_dir: Path | None = DataDirOpt) -> None:
    """List service clients (never their secrets)."""
    settings = _settings(data_dir=data_dir)
    table = Table("client_id", "name", "serves", "grants")
    for c in _run(_with_services(settings, lambda s: s.clients.list_clients())):
        grants = "; ".join(f"{a}: {' '.join(sorted(sc))}" for a, sc in sorted(c.grants.items()))
        table.add_row(c.client_id, c.name, c.serves or "", grants)
    out.print(table)


@clients_app.command("remove")
def clients_remove(name: str, data_dir: Path | None = DataDirOpt) -> None:
    """Remove a client by name or id; its secret stops working at once."""
    settings = _settings(data_dir=data_dir)

    async def go(svc: Any) -> bool:
        removed: bool = await svc.clients.remove_client(name)
        if removed:
            await svc.audit.record("client.removed", actor=_operator(), subject=name)
        return removed

    if not _run(_with_services(settings, go)):
        _fail(f"no client {name!r}", 1)
    out.print(f"removed client {name}", highlight=False)


# --- keys -------------------------------------------------------------------------------------


def _keyset_path(settings: Settings) -> Path:
    path = settings.keys_path
    if not path.exists():
        _fail(f"no key file at {path}; run `dojang init` first", 1)
    return path


_KeyChange = tuple[str, str, dict[str, Any]]
"""(audit action, kid, audit detail) of one key change."""


def _keep_for(settings: Settings) -> float:
    # A retired key must outlive every token it signed, plus the JWKS cache lifetime.
    return float(settings.access_token_ttl) + 300


def _purge_and_save(
    keyset: KeySet, path: Path, now: float, changes: list[_KeyChange]
) -> list[_KeyChange]:
    """Drop expired retired keys (every write is a chance to), save, return all changes."""
    purged: list[_KeyChange] = [("key.purged", kid, {}) for kid in keyset.purge(now=now)]
    keyset.save(path)
    return changes + purged


def _print_purged(changes: list[_KeyChange]) -> None:
    for action, kid, _ in changes:
        if action == "key.purged":
            out.print(f"purged expired retired key {kid}", highlight=False)


def _record_key_changes(
    settings: Settings, changes: list[_KeyChange], events: list[Event] | None = None
) -> None:
    """Write the audit records (and publish revocation events) of key changes already saved."""

    async def go(svc: Any) -> None:
        if events:
            await svc.publish(events)
        for action, kid, detail in changes:
            await svc.audit.record(action, actor=_operator(), subject=kid, **detail)

    _run(_with_services(settings, go))


@keys_app.command("list")
def keys_list(data_dir: Path | None = DataDirOpt) -> None:
    """List signing keys with their state (next, active, retired)."""
    from dojang.clock import SYSTEM_CLOCK
    from dojang.jose import KeySet

    settings = _settings(data_dir=data_dir)
    try:
        # With a clock, `kid in keyset` applies the use-time expiry of retired keys.
        keyset = KeySet.load(_keyset_path(settings), clock=SYSTEM_CLOCK)
    except DojangError as exc:
        _fail(str(exc), 1)
        return
    table = Table("kid", "alg", "state", "created", "published", "retire after")
    for row in keyset.describe():
        state = str(row["state"])
        if row["kid"] not in keyset:
            # Already neither published nor trusted by servers; `keys purge` removes it.
            state = "retired (expired)"
        table.add_row(
            str(row["kid"]),
            str(row["alg"]),
            state,
            _fmt_time(_num(row.get("created_at"))),
            _fmt_time(_num(row.get("published_at"))),
            _fmt_time(_num(row.get("retire_after"))),
        )
    out.print(table)


@keys_app.command("rotate")
def keys_rotate(
    force: bool = typer.Option(
        False,
        "--force",
        help="Rotate even if the next key was published less than the JWKS cache lifetime ago.",
    ),
    data_dir: Path | None = DataDirOpt,
) -> None:
    """Promote the published next key to active; the old active key is retired.

    Refused while the next key has been published for less than the JWKS cache lifetime
    (``Cache-Control: max-age`` of /.well-known/jwks.json): a verifier holding a cached JWKS
    would reject the new key's tokens. Expired retired keys are purged from the file.
    """
    import math
    import time

    from dojang.jose import KeySet
    from dojang.jose.keyset import RotationTooSoon
    from dojang.server.routes.tokens import JWKS_MAX_AGE

    settings = _settings(data_dir=data_dir)
    path = _keyset_path(settings)
    changes: list[_KeyChange] = []
    try:
        keyset = KeySet.load(path)
        now = time.time()
        if keyset.upcoming is None and not force:
            # Nothing is published to promote: publish a key now, so the rotation is safe
            # once caches have seen it (an older key file, or a next key that was retired).
            upcoming = keyset.add_next(now=now)
            changes = _purge_and_save(keyset, path, now, [("key.published", upcoming.kid, {})])
            _record_key_changes(settings, changes)
            _fail(
                f"no next key was published, so none could be promoted; published {upcoming.kid} "
                f"now. Run `dojang keys rotate` again in {JWKS_MAX_AGE}s "
                "(or pass --force to rotate anyway)",
                1,
            )
        # Retired keys stay published until every token they signed has expired.
        new = keyset.rotate(
            now=now,
            keep_for=_keep_for(settings),
            min_lead=0.0 if force else float(JWKS_MAX_AGE),
        )
        keyset.add_next(now=now)
        changes = _purge_and_save(keyset, path, now, [("key.rotated", new.kid, {"force": force})])
    except RotationTooSoon as exc:
        _fail(
            f"{exc}. Wait {math.ceil(exc.wait)}s and run it again, "
            "or pass --force to rotate anyway",
            1,
        )
        return
    except DojangError as exc:
        _fail(str(exc), 1)
        return
    _record_key_changes(settings, changes)
    out.print(
        f"active key is now {new.kid}; running servers pick it up within seconds", highlight=False
    )
    _print_purged(changes)


# Kids are base64url and may start with "-": an unknown "option" is taken as the kid.
@keys_app.command("retire", context_settings={"ignore_unknown_options": True})
def keys_retire(
    kid: str,
    now_: bool = typer.Option(
        False,
        "--now",
        help="Compromised key: stop publishing and trusting it at once, and tell subscribers.",
    ),
    data_dir: Path | None = DataDirOpt,
) -> None:
    """Retire a key that is not active (it stays published until its tokens have expired).

    ``--now`` is for a compromised key: it is retired with no keep time, purged from the file
    and a ``key.retired`` revocation event is published, so subscribed verifiers refuse its
    tokens at once even while their cached JWKS still lists it. The active key cannot be
    retired: rotate first (``dojang keys rotate --force`` if it is compromised).
    """
    import time

    from dojang.jose import KeySet

    settings = _settings(data_dir=data_dir)
    path = _keyset_path(settings)
    try:
        keyset = KeySet.load(path)
        now = time.time()
        keep = 0.0 if now_ else _keep_for(settings)
        keyset.retire(kid, now=now, keep_for=keep)
        record = ("key.retired", kid, {"immediate": now_, "keep_until": now + keep})
        changes = _purge_and_save(keyset, path, now, [record])
    except DojangError as exc:
        _fail(str(exc), 1)
        return
    events: list[Event] = []
    if now_:
        from dojang.events import Event
        from dojang.server.services import TOKEN_HORIZON

        events.append(Event("key.retired", {"kid": kid}, now + TOKEN_HORIZON, now))
    _record_key_changes(settings, changes, events)
    if now_:
        out.print(
            f"retired and purged {kid}; running servers drop it within seconds, and the "
            "key.retired event makes subscribed verifiers refuse its tokens at once",
            highlight=False,
        )
    else:
        out.print(f"retired {kid}", highlight=False)
    _print_purged([c for c in changes if c[1] != kid or not now_])


@keys_app.command("purge")
def keys_purge(data_dir: Path | None = DataDirOpt) -> None:
    """Remove retired keys whose keep-until time has passed from the key file."""
    import time

    from dojang.jose import KeySet

    settings = _settings(data_dir=data_dir)
    path = _keyset_path(settings)
    try:
        keyset = KeySet.load(path)
        gone = keyset.purge(now=time.time())
        if gone:  # an unchanged file is not rewritten (servers would reload it for nothing)
            keyset.save(path)
    except DojangError as exc:
        _fail(str(exc), 1)
        return
    if not gone:
        out.print("no retired key has expired; nothing purged", highlight=False)
        return
    changes: list[_KeyChange] = [("key.purged", kid, {}) for kid in gone]
    _record_key_changes(settings, changes)
    _print_purged(changes)


# --- audit ------------------------------------------------------------------------------------


def _print_audit(records: list[Any]) -> None:
    table = Table("time", "action", "outcome", "actor", "subject", "ip", "session", "detail")
    for r in records:
        table.add_row(
            _fmt_time(r.at),
            r.action,
            r.outcome,
            r.actor or "",
            r.subject or "",
            r.client_ip or "",
            (r.session_ref or "")[:12],
            json.dumps(r.detail, separators=(",", ":"))[:60],
        )
    out.print(table)


@audit_app.command("tail")
def audit_tail(
    n: int = typer.Option(20, "-n", min=1, max=10000, help="How many records."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
    data_dir: Path | None = DataDirOpt,
) -> None:
    """The newest audit records."""
    settings = _settings(data_dir=data_dir)
    records = _run(_with_services(settings, lambda s: s.audit.search(limit=n)))
    _emit_audit(list(reversed(records)), as_json)


@audit_app.command("search")
def audit_search(
    action: str | None = typer.Option(None, "--action", help="Action prefix, e.g. login."),
    actor: str | None = typer.Option(None, "--actor"),
    subject: str | None = typer.Option(None, "--subject"),
    since: float | None = typer.Option(None, "--since", help="Unix time."),
    until: float | None = typer.Option(None, "--until", help="Unix time."),
    limit: int = typer.Option(100, "--limit", min=1, max=10000),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
    data_dir: Path | None = DataDirOpt,
) -> None:
    """Search the audit trail (newest first)."""
    settings = _settings(data_dir=data_dir)
    records = _run(
        _with_services(
            settings,
            lambda s: s.audit.search(
                action=action, actor=actor, subject=subject, since=since, until=until, limit=limit
            ),
        )
    )
    _emit_audit(records, as_json)


def _emit_audit(records: list[Any], as_json: bool) -> None:
    if as_json:
        for r in records:
            sys.stdout.write(json.dumps(dataclasses.asdict(r), separators=(",", ":")) + "\n")
        return
    _print_audit(records)


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _fmt_time(ts: float | None) -> str:
    if ts is None:
        return ""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def main() -> None:
    """Entry point for the ``dojang`` script."""
    app()
