"""Error bodies of the served API: every 4xx/5xx is JSON naming what was wrong, never a stack trace.

BentoML answers an invalid body with 400 and pydantic's error list; :class:`ValidationBodyMiddleware` rewrites
that list into the service's own shape (field, rule, message per problem). Errors the handlers detect are
returned by :func:`error_response`. :class:`ClientErrorLogFilter` keeps BentoML from logging a traceback for
every client mistake, while real server errors are still logged.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pydantic
from bentoml.exceptions import BentoMLException
from starlette.responses import JSONResponse

from serving import metrics


def error_response(
    status: int, error: str, detail: str | list[dict[str, str]], endpoint: str
) -> JSONResponse:
    """A JSON error body ``{"error": code, "detail": ...}`` with its status, counted per endpoint."""
    metrics.ERRORS.labels(endpoint, error).inc()
    return JSONResponse({"error": error, "detail": detail}, status_code=status)


def field_problems(errors: list[dict[str, Any]]) -> list[dict[str, str]]:
    """pydantic errors as ``{"field": "requests.3.machine_id", "rule": "string_pattern_mismatch", ...}``."""
    return [
        {
            "field": ".".join(str(part) for part in e.get("loc", ())) or "(body)",
            "rule": str(e.get("type", "invalid")),
            "message": str(e.get("msg", "")),
        }
        for e in errors
    ]


class ValidationBodyMiddleware:
    """Rewrite BentoML's 400 validation bodies into ``{"error": "invalid_request", "detail": [...]}``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: dict[str, Any] | None = None

        async def rewrite(message: dict[str, Any]) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and message["status"] == 400:
                held = message  # hold the headers until the body is known
                return
            if held is not None and message["type"] == "http.response.body":
                body = _rewritten(message.get("body", b""))
                headers = [(k, v) for k, v in held["headers"] if k.lower() != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode()))
                await send({**held, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                metrics.ERRORS.labels(scope.get("path", ""), "invalid_request").inc()
                return
            await send(message)

        await self.app(scope, receive, rewrite)


def _rewritten(raw: bytes) -> bytes:
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        body = {"detail": str(raw[:200], "utf-8", "replace")}
    detail = body.get("detail") if isinstance(body, dict) else body
    if isinstance(detail, list) and all(isinstance(d, dict) for d in detail):
        problems: str | list[dict[str, str]] = field_problems(detail)
    else:
        problems = str(detail if detail is not None else body)
    return json.dumps({"error": "invalid_request", "detail": problems}).encode()


class ClientErrorLogFilter(logging.Filter):
    """Drop BentoML's ERROR-with-traceback records for client errors (4xx); keep everything else."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, pydantic.ValidationError):
            return False
        return not (isinstance(exc, BentoMLException) and int(exc.error_code) < 500)


def quiet_client_errors() -> None:
    """Install :class:`ClientErrorLogFilter` on BentoML's HTTP app logger (once)."""
    logger = logging.getLogger("bentoml._internal.server.http_app")
    if not any(isinstance(f, ClientErrorLogFilter) for f in logger.filters):
        logger.addFilter(ClientErrorLogFilter())
