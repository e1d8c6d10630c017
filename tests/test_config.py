"""Settings: precedence, validation with every problem reported at once, secrets hidden."""

from __future__ import annotations

from pathlib import Path

import pytest

from dojang.config import load_settings
from dojang.errors import ConfigError


def test_defaults_are_the_embedded_setup() -> None:
    s = load_settings(env={})
    assert (s.host, s.port, s.public_url) == ("127.0.0.1", 8000, "http://127.0.0.1:8000")
    assert s.session_store == "sql" and s.event_bus == "local" and s.workers == 1
    assert s.effective_database_url.startswith("sqlite:///") and s.cookie_name == "dojang_session"


def test_precedence_flags_over_env_over_file(tmp_path: Path) -> None:
    toml = tmp_path / "dojang.toml"
    toml.write_text('[dojang]\nport = 9001\nhost = "127.0.0.2"\nworkers = 3\n')
    env = {"DOJANG_CONFIG": str(toml), "DOJANG_PORT": "9002"}
    s = load_settings({"workers": 2}, env=env)
    assert (s.host, s.port, s.workers) == ("127.0.0.2", 9002, 2)


def test_every_problem_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(
            env={
                "DOJANG_PORT": "http",
                "DOJANG_PUBLIC_URL": "ftp://x",
                "DOJANG_SESSION_STORE": "mongodb://x",
                "DOJANG_WORKRS": "2",
                "DOJANG_ACCESS_TOKEN_TTL": "3600",
            }
        )
    text = str(info.value)
    for name in (
        "DOJANG_PORT",
        "DOJANG_PUBLIC_URL",
        "DOJANG_SESSION_STORE",
        "DOJANG_WORKRS",
        "DOJANG_ACCESS_TOKEN_TTL",
    ):
        assert name in text, name
    assert len(info.value.problems) == 5


def test_public_url_follows_the_bind_address_unless_set() -> None:
    assert load_settings({"port": 9100}, env={}).public_url == "http://127.0.0.1:9100"
    assert load_settings(env={"DOJANG_HOST": "::1"}).public_url == "http://[::1]:8000"
    explicit = load_settings({"port": 9100}, env={"DOJANG_PUBLIC_URL": "https://a.example"})
    assert explicit.public_url == "https://a.example"


def test_https_public_url_hardens_cookies() -> None:
    s = load_settings(env={"DOJANG_PUBLIC_URL": "https://auth.example/"})
    assert s.is_https and s.cookie_name == "__Host-dojang_session"
    assert s.issuer == "https://auth.example"


def test_public_url_must_be_an_origin() -> None:
    with pytest.raises(ConfigError, match="DOJANG_PUBLIC_URL"):
        load_settings(env={"DOJANG_PUBLIC_URL": "https://auth.example/path"})


def test_idle_cannot_exceed_absolute() -> None:
    with pytest.raises(ConfigError, match="DOJANG_SESSION_IDLE_TIMEOUT"):
        load_settings(
            env={"DOJANG_SESSION_IDLE_TIMEOUT": "100", "DOJANG_SESSION_ABSOLUTE_LIFETIME": "50"}
        )


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    toml = tmp_path / "broken.toml"
    toml.write_text("port = = 1")
    with pytest.raises(ConfigError, match=r"broken\.toml"):
        load_settings(env={"DOJANG_CONFIG": str(toml)})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(env={"DOJANG_CONFIG": str(tmp_path / "missing.toml")})


def test_unknown_toml_key_is_an_error(tmp_path: Path) -> None:
    toml = tmp_path / "dojang.toml"
    toml.write_text("[dojang]\nprot = 1\n")
    with pytest.raises(ConfigError, match="DOJANG_PROT"):
        load_settings(env={"DOJANG_CONFIG": str(toml)})


def test_metrics_token_is_never_shown() -> None:
    s = load_settings(env={"DOJANG_METRICS_TOKEN": "s3cret-value"})
    assert "s3cret-value" not in repr(s)
    with pytest.raises(ConfigError) as info:
        load_settings(env={"DOJANG_METRICS_TOKEN": "s3cret-value", "DOJANG_PORT": "0"})
    assert "s3cret-value" not in str(info.value)
