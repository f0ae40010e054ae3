"""A limit on the size of request bodies: a raw ASGI middleware answering 413 instead of reading a huge body.

The service's schemas bound every field, but only after the whole body has been read and parsed: a body of
hundreds of megabytes would be held in a worker's memory first. :class:`BodyLimitMiddleware` refuses such a
body before that. A request whose Content-Length is over the limit is refused unread; one without a
Content-Length (a chunked upload) has its ``http.request`` messages counted and is refused as soon as they
pass the limit, so the app never holds more than the limit. A request with a valid Content-Length within the
limit, which is nearly every request, goes through untouched: one look at its headers, no wrapper.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable
from http import HTTPStatus
from typing import Any

from bentoml.exceptions import BentoMLException

from serving import metrics

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ERROR = "payload_too_large"
OTHER_PATH = "(other)"  # the metric label of a path that is no endpoint (bounded label values)
# A longer Content-Length is no length a server frames a body by: such a body is counted as it arrives.
MAX_LENGTH_DIGITS = 18


class BodyTooLargeError(BentoMLException):
    """Raised to the app reading a streamed body past the limit.

    A BentoMLException with a 4xx code, so BentoML's endpoint wrapper does not log it with a traceback (see
    serving.errors.ClientErrorLogFilter); whatever the app answers is replaced by the middleware's 413.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(_detail(limit), error_code=HTTPStatus.REQUEST_ENTITY_TOO_LARGE)


class BodyLimitMiddleware:
    """Answer 413 ``{"error": "payload_too_large", ...}`` to a request body over ``max_body_bytes``.

    Added by the service with ``Service.add_asgi_middleware(BodyLimitMiddleware, max_body_bytes=..., ...)``.

    Args:
        app: the ASGI app it wraps.
        max_body_bytes: the limit, or a function giving it: called once, when the app is built (the service
            reads its settings then rather than at import).
        endpoints: paths counted under their own name in ``mesops_errors_total``; any other path is counted
            as ``(other)``, so that made-up paths cannot grow the metric without bound.
    """

    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int | Callable[[], int], endpoints: Collection[str] = ()
    ) -> None:
        limit = max_body_bytes() if callable(max_body_bytes) else max_body_bytes
        if limit < 1:
            raise ValueError(f"max_body_bytes: must be at least 1, not {limit}")
        self.app = app
        self.limit = limit
        self.endpoints = frozenset(endpoints)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass a request whose Content-Length is within the limit through untouched; check all others."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = declared_length(scope["headers"])
        if length is None:
            await self._counted(scope, receive, send)
        elif length > self.limit:
            await self._refuse(scope, send)
        else:
            await self.app(scope, receive, send)

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app with a ``receive`` that counts the body and stops it at the limit."""
        received = 0
        exceeded = started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise BodyTooLargeError(self.limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    exceeded = True  # this chunk is never handed to the app
                    raise BodyTooLargeError(self.limit)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # the app's answer to a body it could not read (a 500, a 400) is replaced
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        path = scope.get("path", "")
        logger.info("refused %s %s: body over %d bytes", scope.get("method", ""), path, self.limit)
        metrics.ERRORS.labels(path if path in self.endpoints else OTHER_PATH, ERROR).inc()
        body = json.dumps({"error": ERROR, "detail": _detail(self.limit)}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def declared_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    """The body length a request's headers promise, or None when they promise none the server enforces.

    None when there is no Content-Length, more than one, an invalid one, or a Transfer-Encoding beside it (the
    body is then framed by the encoding, not by the length): such a body is counted as it arrives.
    """
    length: int | None = None
    seen = 0
    for name, value in headers:  # ASGI header names are lower-case bytes
        if name == b"content-length":
            seen += 1
            length = int(value) if value.isdigit() and len(value) <= MAX_LENGTH_DIGITS else None
        elif name == b"transfer-encoding":
            return None
    return length if seen == 1 else None


def _detail(limit: int) -> str:
    return f"body: at most {limit} bytes (serving_max_body_bytes)"
