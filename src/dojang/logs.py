"""Structured (JSON-lines) logging for ``dojang serve``: one object per line, machine-readable.

Audit records (``dojang.audit``) are already JSON messages and are passed through as objects;
everything else becomes ``{"time", "level", "logger", "message"}`` plus the exception text
when there is one. Never put secrets in log messages; this formatter does not scrub them.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record``; a message that is itself a JSON object is embedded as one."""
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        message = record.getMessage()
        if record.name == "dojang.audit" and message.startswith("{"):
            try:
                entry["audit"] = json.loads(message)
            except ValueError:
                entry["message"] = message
        else:
            entry["message"] = message
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
