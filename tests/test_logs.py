"""Structured logs: one JSON object per line, audit records embedded as objects."""

from __future__ import annotations

import json
import logging
import logging.config

import pytest

from dojang.logs import JsonFormatter, JsonMessage, uvicorn_log_config


def _record(name: str, message: object, *, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            import sys

            exc_info = sys.exc_info()
    return logging.LogRecord(name, logging.WARNING, __file__, 1, message, None, exc_info)


def test_plain_records_become_json_objects() -> None:
    line = JsonFormatter().format(_record("dojang.server", "store slow: %s"))
    entry = json.loads(line)
    assert entry["level"] == "warning" and entry["logger"] == "dojang.server"
    assert entry["message"] == "store slow: %s" and entry["time"].endswith("+00:00")
    assert "\n" not in line


def test_audit_records_are_embedded_and_exceptions_kept() -> None:
    message = JsonMessage({"action": "logout", "detail": {"via": "api"}})
    audit = JsonFormatter().format(_record("dojang.audit", message))
    assert json.loads(audit)["audit"] == {"action": "logout", "detail": {"via": "api"}}
    # Plain handlers (and caplog) see the same object as compact JSON text.
    assert json.loads(str(message)) == message.data
    # A JSON-looking plain string from anyone is just a message, never parsed.
    spoof = json.loads(JsonFormatter().format(_record("dojang.audit", '{"action":"x"}')))
    assert spoof["message"] == '{"action":"x"}' and "audit" not in spoof
    failed = json.loads(JsonFormatter().format(_record("dojang.x", "oops", exc=True)))
    assert "RuntimeError: boom" in failed["exception"]


def test_serve_log_config_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    logging.config.dictConfig(uvicorn_log_config("info"))
    try:
        logging.getLogger("dojang.server").info("hello")
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert json.loads(err)["message"] == "hello"
    finally:
        logging.getLogger("dojang").handlers.clear()
        logging.getLogger("dojang").propagate = True
        logging.getLogger("uvicorn").handlers.clear()
        logging.getLogger("uvicorn").propagate = True
        logging.getLogger("uvicorn.access").handlers.clear()
        logging.getLogger("uvicorn.access").propagate = True
