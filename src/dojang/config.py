"""Typed, frozen settings from flags, ``DOJANG_*`` variables, an optional TOML file and defaults.

Precedence (highest first): CLI flags → environment → ``dojang.toml`` (path in
``DOJANG_CONFIG``) → defaults. Everything is validated at start-up and *every* problem is
reported at once, each message naming the option, what is allowed and what was given.
This module is the only place that reads the environment; the rest of dojang receives a
``Settings`` object explicitly.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from dojang.errors import ConfigError

MAX_ACCESS_TTL = 900  # DESIGN.md: access tokens are configurable up to 15 minutes.
_REDIS_SCHEMES = ("redis://", "rediss://", "redis+cluster://", "redis+sentinel://")
_DB_SCHEMES = (
    "sqlite://",
    "sqlite+aiosqlite://",
    "postgresql://",
    "postgres://",
    "postgresql+asyncpg://",
)


class Settings(BaseSettings):
    """Every dojang setting. Field ``x`` is ``DOJANG_X`` in the environment and ``x`` in TOML."""

    model_config = SettingsConfigDict(
        env_prefix="DOJANG_", frozen=True, extra="forbid", case_sensitive=False
    )

    data_dir: Path = Path("./.dojang")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    public_url: str = "http://127.0.0.1:8000"
    database_url: str | None = None
    session_store: str = "sql"
    event_bus: str = "local"
    workers: int = Field(1, ge=1, le=64)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    # Sessions (seconds).
    session_idle_timeout: float = Field(1800, gt=0)
    session_absolute_lifetime: float = Field(12 * 3600, gt=0)
    session_remember_me_lifetime: float = Field(30 * 86400, gt=0)
    session_remember_me_idle: float = Field(7 * 86400, gt=0)
    session_touch_interval: float = Field(60, ge=0)
    session_max_data_bytes: int = Field(4096, ge=256, le=65536)

    # Tokens.
    access_token_ttl: int = Field(60, ge=5, le=MAX_ACCESS_TTL)
    key_alg: Literal["EdDSA", "ES256"] = "EdDSA"

    # Accounts.
    registration_enabled: bool = False
    argon2_time_cost: int = Field(3, ge=1, le=20)
    argon2_memory_cost: int = Field(65536, ge=8, le=4 * 1024 * 1024)
    argon2_parallelism: int = Field(4, ge=1, le=32)

    # HTTP edge.
    trusted_proxies: list[str] = Field(default_factory=list)
    auth_check_redirect: bool = False
    metrics_token: SecretStr | None = None

    demo: bool = False

    @model_validator(mode="before")
    @classmethod
    def _default_public_url(cls, data: Any) -> Any:
        # Unset, the public URL follows the bind address, so `--port 9000` alone just works.
        if isinstance(data, dict) and not data.get("public_url"):
            host = str(data.get("host") or "127.0.0.1")
            if ":" in host:
                host = f"[{host}]"
            data = {**data, "public_url": f"http://{host}:{data.get('port') or 8000}"}
        return data

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http(s) URL such as https://auth.example")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("must be an origin without path, query or fragment")
        return v.rstrip("/")

    @field_validator("session_store")
    @classmethod
    def _check_session_store(cls, v: str) -> str:
        if v in ("sql", "memory") or v.startswith(_REDIS_SCHEMES):
            return v
        raise ValueError("expected 'sql', 'memory' or a redis:// / redis+cluster:// URL")

    @field_validator("event_bus")
    @classmethod
    def _check_event_bus(cls, v: str) -> str:
        if v == "local" or v.startswith(("redis://", "rediss://")):
            return v
        raise ValueError("expected 'local' or a redis:// URL")

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, v: str | None) -> str | None:
        if v is None or v.startswith(_DB_SCHEMES):
            return v
        raise ValueError("expected sqlite:///<path> or postgresql://user@host/db")

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, v: object) -> object:
        # The environment gives "10.0.0.1, 10.1.0.0/16"; TOML gives a list.
        if isinstance(v, str):
            return [p.strip() for p in v.split(",") if p.strip()]
        return v

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, v: list[str]) -> list[str]:
        for proxy in v:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(f"{proxy!r} is not an IP address or network") from None
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        problems = []
        for idle, life in (
            ("session_idle_timeout", "session_absolute_lifetime"),
            ("session_remember_me_idle", "session_remember_me_lifetime"),
        ):
            if getattr(self, idle) > getattr(self, life):
                problems.append(
                    f"DOJANG_{idle.upper()}: must not exceed DOJANG_{life.upper()} "
                    f"({getattr(self, idle)} > {getattr(self, life)})"
                )
        if problems:
            # One problem per line: load_settings reports each (every problem at once).
            raise ValueError("\n".join(problems))
        return self

    # --- derived values (pure functions of the settings) ---------------------------------

    @property
    def is_https(self) -> bool:
        """True when the public URL is https: cookies get ``Secure`` and ``__Host-``."""
        return self.public_url.startswith("https://")

    @property
    def issuer(self) -> str:
        """The token issuer: the public URL without a trailing slash."""
        return self.public_url.rstrip("/")

    @property
    def cookie_name(self) -> str:
        """``__Host-dojang_session`` on https; the plain name only for http development."""
        return "__Host-dojang_session" if self.is_https else "dojang_session"

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir.resolve() / 'dojang.db'}"

    @property
    def keys_path(self) -> Path:
        """Where the signing keys live (mode 0600)."""
        return self.data_dir / "keys.json"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_settings() merges flags > environment > TOML itself and passes the result as
        # init kwargs, so a caller-supplied environment (tests, embedding) is honoured exactly.
        return (init_settings,)


def _option_name(loc: tuple[Any, ...]) -> str:
    if not loc:
        return "configuration"
    name = str(loc[0])
    return f"DOJANG_{name.upper()}"


def _read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"DOJANG_CONFIG: file {path!r} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"DOJANG_CONFIG: cannot read {path!r}: {exc}") from None
    section = data.get("dojang", data)
    if not isinstance(section, dict):
        raise ConfigError(f"DOJANG_CONFIG: {path!r} must hold a [dojang] table")
    return section


def load_settings(
    flags: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Build ``Settings`` from flags, the environment and the TOML file; raise ``ConfigError``.

    ``env`` defaults to ``os.environ`` (this is the one place allowed to read it).
    """
    environ = os.environ if env is None else env
    toml_path = environ.get("DOJANG_CONFIG")
    merged: dict[str, Any] = dict(_read_toml(toml_path)) if toml_path else {}
    problems: list[str] = []
    for key, value in environ.items():
        if not key.upper().startswith("DOJANG_") or key.upper() == "DOJANG_CONFIG":
            continue
        name = key[len("DOJANG_") :].lower()
        if name in Settings.model_fields:
            merged[name] = value
        elif not name.startswith("test_"):  # DOJANG_TEST_* belong to the test suite
            problems.append(f"{key.upper()}: unknown setting")
    merged.update({k: v for k, v in (flags or {}).items() if v is not None})
    try:
        settings = Settings(**merged)
    except ValidationError as exc:
        for err in exc.errors():
            where = _option_name(tuple(err.get("loc", ())))
            msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
            if where == "configuration":
                problems.extend(msg.splitlines())
            else:
                given = err.get("input")
                shown = "<hidden>" if "token" in where.lower() else repr(given)
                problems.append(f"{where}: {msg} (got {shown})")
    else:
        if not problems:
            return settings
    raise ConfigError(problems)
