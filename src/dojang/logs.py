"""Structured (JSON-lines) logging for ``dojang serve``: one object per line, machine-readable.

Audit records (``dojang.audit``, logged as :class:`JsonMessage`) are embedded as objects;
everything else becomes ``{"time", "level", "logger", "message"}`` plus the exception text
when there is one. Never put secrets in log messages; this formatter does not scrub them.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any


class JsonMessage:
    """A log message that is a JSON object: rendered lazily, embedded as an object.

    ``str()`` gives the compact JSON text (what plain handlers and ``caplog`` see);
    :class:`JsonFormatter` embeds the object itself, so it is serialized once, not twice.
    """

    __slots__ = ("data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def __str__(self) -> str:
        return json.dumps(self.data, separators=(",", ":"), sort_keys=True)


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record``; a message that is itself a JSON object is embedded as one."""
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if record.name == "dojang.audit" and isinstance(record.msg, JsonMessage):
            entry["audit"] = record.msg.data
        else:
            entry["message"] = record.getMessage()
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, separators=(",", ":"), ensure_ascii=False)


def uvicorn_log_config(level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for uvicorn and dojang, all in JSON lines on stderr."""
    upper = level.upper()
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "dojang.logs.JsonFormatter"}},
        "handlers": {"default": handler},
        "loggers": {
            "dojang": {"handlers": ["default"], "level": upper, "propagate": False},
            "uvicorn": {"handlers": ["default"], "level": upper, "propagate": False},
            "uvicorn.error": {"level": upper},
            "uvicorn.access": {"handlers": ["default"], "level": "WARNING", "propagate": False},
        },
    }
