"""Strict request-body reading: size cap, content type, UTF-8, JSON depth, then pydantic.

Refusing ``text/plain`` / form types on JSON endpoints is part of the CSRF defence: a
cross-site HTML form can only send "simple" content types, never ``application/json``.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from dojang.server.responses import HTTPError

M = TypeVar("M", bound=BaseModel)
MAX_JSON_DEPTH = 16


async def read_body(request: Request, limit: int) -> bytes:
    """Read the body, refusing (413) as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPError(400, "invalid_request", "Content-Length is not a number")
        if int(declared) > limit:
            raise HTTPError(413, "payload_too_large", f"request body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, "payload_too_large", f"request body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _validation_detail(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


async def read_json(request: Request, model: type[M], limit: int) -> M:
    """Parse the body as a JSON object into ``model``; every problem is a 4xx ``HTTPError``."""
    if _media_type(request) != "application/json":
        raise HTTPError(415, "unsupported_media_type", "send the body as application/json")
    raw = await read_body(request, limit)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPError(400, "invalid_request", "body is not valid UTF-8") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise HTTPError(400, "invalid_json", "body is not valid JSON") from None
    if not isinstance(data, dict):
        raise HTTPError(400, "invalid_json", "body must be a JSON object")
    if _depth(data) > MAX_JSON_DEPTH:
        raise HTTPError(400, "invalid_json", "JSON nested too deeply")
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as exc:
        raise HTTPError(400, "invalid_request", _validation_detail(exc)) from None


async def read_form(request: Request, limit: int) -> dict[str, str]:
    """Parse an ``application/x-www-form-urlencoded`` body strictly (UTF-8, size-capped).

    Repeated fields are refused, so a parameter can never mean two things at once.
    """
    if _media_type(request) != "application/x-www-form-urlencoded":
        raise HTTPError(415, "unsupported_media_type", "send the form as urlencoded")
    raw = await read_body(request, limit)
    try:
        pairs = parse_qsl(
            raw.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
            max_num_fields=64,
        )
    except (UnicodeDecodeError, ValueError):
        raise HTTPError(400, "invalid_request", "form body is not valid UTF-8 urlencoded") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:
            raise HTTPError(400, "invalid_request", f"field {key!r} given more than once")
        form[key] = value
    return form
