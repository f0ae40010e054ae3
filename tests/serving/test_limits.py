"""Input limits of the served API: the request-body limit (serving/limits.py) and the feature value rules.

The middleware is driven two ways: raw ASGI calls with a scripted ``receive`` (to see exactly what the app is
handed), and a Starlette app behind httpx's ASGI transport, whose endpoint either lets the error of an
over-long body propagate or catches it and answers 500 the way BentoML's endpoint wrapper does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from models.failure_features import CATEGORICAL, feature_names
from serving.auth import Permission
from serving.errors import ClientErrorLogFilter
from serving.limits import BodyLimitMiddleware, BodyTooLargeError, declared_length
from serving.openapi import ErrorBody, complete_document
from serving.scoring import MAX_TEXT_FEATURE_CHARS, FeatureError, check_features

LIMIT = 1000
TOO_LARGE = {"error": "payload_too_large", "detail": f"body: at most {LIMIT} bytes (serving_max_body_bytes)"}
Message = dict[str, Any]


# --- raw ASGI -------------------------------------------------------------------------------------------
class Recorder:
    """An inner app that reads the whole body, then answers 200 with its length; records what it was handed."""

    def __init__(self) -> None:
        self.receive: Any = None
        self.bodies: list[bytes] = []
        self.calls = 0

    async def __call__(self, scope: Message, receive: Any, send: Any) -> None:
        self.calls += 1
        self.receive = receive
        more = True
        while more:
            message = await receive()
            self.bodies.append(message.get("body", b""))
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(len(b"".join(self.bodies))).encode()})


def _call(
    app: Any, headers: list[tuple[bytes, bytes]], chunks: list[bytes], **options: Any
) -> tuple[list[Message], Any]:
    """Run the middleware over ``app`` for one POST; the messages it sent and the ``receive`` it was given."""
    script = iter(
        [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    )
    sent: list[Message] = []

    async def receive() -> Message:
        return next(script, {"type": "http.disconnect"})

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/things", "headers": headers}
    options = {"max_body_bytes": LIMIT} | options
    asyncio.run(BodyLimitMiddleware(app, **options)(scope, receive, send))
    return sent, receive


def _status_and_body(sent: list[Message]) -> tuple[int, bytes]:
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"], sent
    return sent[0]["status"], sent[1]["body"]


def _length(n: int) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/json"), (b"content-length", str(n).encode())]


def test_a_body_within_a_declared_length_reaches_the_app_with_receive_untouched() -> None:
    app = Recorder()
    sent, receive = _call(app, _length(LIMIT), [b"x" * 600, b"x" * 400])
    assert app.receive is receive  # no wrapper: the fast path of nearly every request
    assert _status_and_body(sent) == (200, str(LIMIT).encode())


def test_a_declared_length_over_the_limit_is_refused_unread() -> None:
    app = Recorder()
    sent, _ = _call(app, _length(LIMIT + 1), [b"x" * (LIMIT + 1)])
    status, body = _status_and_body(sent)
    assert app.calls == 0 and status == 413 and json.loads(body) == TOO_LARGE
    assert (b"content-length", str(len(body)).encode()) in sent[0]["headers"]


@pytest.mark.parametrize(
    "headers",
    [
        [(b"transfer-encoding", b"chunked")],
        [],  # no length at all: what an HTTP/2 server may hand over
        [(b"content-length", b"10"), (b"transfer-encoding", b"chunked")],  # the encoding frames the body
        [(b"content-length", b"10"), (b"content-length", b"10")],
        [(b"content-length", b"ten")],
        [(b"content-length", b"9" * 40)],
    ],
    ids=["chunked", "none", "length-and-chunked", "two-lengths", "not-a-number", "too-many-digits"],
)
def test_a_body_without_a_trusted_length_is_counted_and_stopped_at_the_limit(
    headers: list[tuple[bytes, bytes]],
) -> None:
    within = Recorder()
    sent, _ = _call(within, headers, [b"x" * 500, b"x" * 500])
    assert _status_and_body(sent) == (200, str(LIMIT).encode())
    over = Recorder()
    sent, _ = _call(over, headers, [b"x" * 500, b"x" * 500, b"x", b"x" * 500])
    status, body = _status_and_body(sent)  # the app's own answer never went out: only the 413
    assert status == 413 and json.loads(body) == TOO_LARGE
    assert b"".join(over.bodies) == b"x" * LIMIT  # the chunk that passed the limit was never handed over


def test_what_the_app_answers_after_the_limit_is_replaced_by_the_413() -> None:
    """An app catching the error (BentoML answers 500) sends nothing; the 413 goes out after it returns."""

    async def catching(scope: Message, receive: Any, send: Any) -> None:
        try:
            while (await receive()).get("more_body"):
                pass
        except BodyTooLargeError:
            await send({"type": "http.response.start", "status": 500, "headers": []})
            await send({"type": "http.response.body", "body": b"boom"})

    sent, _ = _call(catching, [(b"transfer-encoding", b"chunked")], [b"x" * 800, b"x" * 800])
    assert _status_and_body(sent) == (413, json.dumps(TOO_LARGE).encode())


def test_an_error_of_the_app_itself_is_not_swallowed() -> None:
    async def failing(scope: Message, receive: Any, send: Any) -> None:
        raise RuntimeError("the app's own bug")

    with pytest.raises(RuntimeError, match="the app's own bug"):
        _call(failing, [(b"transfer-encoding", b"chunked")], [b"{}"])


def test_other_scopes_pass_through_and_the_limit_may_come_from_a_function() -> None:
    reached: list[str] = []

    async def inner(scope: Message, receive: Any, send: Any) -> None:
        reached.append(scope["type"])

    async def nothing() -> Message:
        return {"type": "lifespan.startup"}

    async def ignore(message: Message) -> None:
        raise AssertionError(f"nothing may be sent, got {message}")

    middleware = BodyLimitMiddleware(inner, max_body_bytes=lambda: 5)
    asyncio.run(middleware({"type": "lifespan"}, nothing, ignore))
    assert reached == ["lifespan"] and middleware.limit == 5
    with pytest.raises(ValueError, match="max_body_bytes: must be at least 1"):
        BodyLimitMiddleware(inner, max_body_bytes=0)


def _refusals(endpoint: str) -> float:
    labels = {"endpoint": endpoint, "error": "payload_too_large"}
    return REGISTRY.get_sample_value("mesops_errors_total", labels) or 0.0


def test_refusals_are_counted_by_endpoint_and_other_paths_share_one_label() -> None:
    before = _refusals("/v1/things"), _refusals("(other)")
    _call(Recorder(), _length(LIMIT + 1), [], endpoints=["/v1/things"])
    _call(Recorder(), _length(LIMIT + 1), [])
    assert (_refusals("/v1/things"), _refusals("(other)")) == (before[0] + 1, before[1] + 1)


def test_declared_length() -> None:
    assert declared_length([(b"host", b"x"), (b"content-length", b"42")]) == 42
    assert declared_length([(b"content-length", b"0")]) == 0
    assert declared_length([]) is None


# --- through Starlette and httpx ------------------------------------------------------------------------
def _starlette(catch: bool) -> Starlette:
    async def echo(request: Request) -> JSONResponse:
        if not catch:
            return JSONResponse({"bytes": len(await request.body())})
        try:
            return JSONResponse({"bytes": len(await request.body())})
        except Exception:  # what BentoML's endpoint wrapper does with any error
            return JSONResponse({"error": "An unexpected error has occurred"}, status_code=500)

    app = Starlette(routes=[Route("/echo", echo, methods=["POST"])])
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=LIMIT)
    return app


def _post(app: Starlette, content: bytes | Iterator[bytes]) -> httpx.Response:
    async def call() -> httpx.Response:
        if not isinstance(content, bytes):
            chunks = list(content)

            async def stream() -> Any:  # an async generator: httpx sends it chunked, without a length
                for chunk in chunks:
                    yield chunk

            body: Any = stream()
        else:
            body = content
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://mesops.test") as client:
            return await client.post("/echo", content=body)

    return asyncio.run(call())


@pytest.mark.parametrize("catch", [False, True], ids=["error-propagates", "app-answers-500"])
def test_through_starlette_with_and_without_a_content_length(catch: bool) -> None:
    app = _starlette(catch)
    assert _post(app, b"x" * LIMIT).json() == {"bytes": LIMIT}
    assert _post(app, iter([b"x" * 400] * 2)).json() == {"bytes": 800}
    for too_large in (b"x" * (LIMIT + 1), iter([b"x" * 400] * 3)):
        response = _post(app, too_large)
        assert response.status_code == 413 and response.json() == TOO_LARGE


def test_the_error_raised_to_the_app_is_not_logged_with_a_traceback() -> None:
    try:
        raise BodyTooLargeError(LIMIT)
    except BodyTooLargeError as err:
        record = logging.LogRecord(
            "bentoml", logging.ERROR, __file__, 1, "Exception on /v1", (), (type(err), err, None)
        )
    assert ClientErrorLogFilter().filter(record) is False


# --- the published document -----------------------------------------------------------------------------
def test_operations_taking_a_body_document_the_413() -> None:
    ok = {"200": {"description": "ok"}}
    generated = {
        "paths": {
            "/v1/failure/risk": {"post": {"requestBody": {"content": {}}, "responses": dict(ok)}},
            "/v1/rollout": {"post": {"responses": dict(ok)}},
        }
    }
    document = complete_document(
        generated, {"/v1/failure/risk": Permission.PREDICT, "/v1/rollout": Permission.READ}
    )
    risk = document["paths"]["/v1/failure/risk"]["post"]["responses"]
    assert list(risk) == ["200", "400", "401", "403", "404", "413", "503"]
    assert "serving_max_body_bytes" in risk["413"]["description"]
    assert "413" not in document["paths"]["/v1/rollout"]["post"]["responses"]
    ErrorBody.model_validate(TOO_LARGE)


# --- feature values -------------------------------------------------------------------------------------
def _valid() -> dict[str, Any]:
    return {name: ("L" if name in CATEGORICAL else 1.5) for name in feature_names()}


NUMERIC = "torque_nm_last"


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {NUMERIC: None, "machine_type": None},  # missing values: the model handles them as in training
        {NUMERIC: 3, "down_events_24h": 0},
        {"line_id": "L" * MAX_TEXT_FEATURE_CHARS},
    ],
    ids=["numbers-and-text", "nulls", "integers", "longest-text"],
)
def test_features_of_their_kind_are_accepted(changes: dict[str, Any]) -> None:
    assert NUMERIC in feature_names() and {"machine_type", "line_id"} <= set(CATEGORICAL)
    check_features(_valid() | changes, feature_names())


@pytest.mark.parametrize(
    ("name", "value", "rule"),
    [
        (NUMERIC, "do-not-echo", f"{NUMERIC} must be a number or null, not text"),
        (NUMERIC, True, f"{NUMERIC} must be a number or null, not bool"),
        (NUMERIC, math.nan, f"{NUMERIC} must be a finite number or null, not nan"),
        (NUMERIC, math.inf, f"{NUMERIC} must be a finite number or null, not inf"),
        ("machine_type", 2.0, "machine_type must be text or null, not float"),
        (
            "line_id",
            "do-not-echo" * 100,
            f"line_id must be text of at most {MAX_TEXT_FEATURE_CHARS} characters, not 1100",
        ),
    ],
    ids=["text-for-number", "bool", "nan", "inf", "number-for-text", "text-too-long"],
)
def test_a_value_not_of_its_kind_is_refused_naming_the_feature_and_rule(
    name: str, value: Any, rule: str
) -> None:
    with pytest.raises(FeatureError) as refused:
        check_features(_valid() | {name: value}, feature_names())
    assert str(refused.value) == f"features: each value must fit its feature; {rule}"
    assert "do-not-echo" not in str(refused.value)  # the value itself is never repeated (nor logged)


def test_many_wrong_values_are_listed_up_to_ten() -> None:
    numeric = [n for n in feature_names() if n not in CATEGORICAL]
    with pytest.raises(FeatureError) as refused:
        check_features(_valid() | dict.fromkeys(numeric, "x"), feature_names())
    assert str(refused.value).count("must be a number") == 10 and str(refused.value).endswith(" …")


def test_names_are_checked_before_values() -> None:
    with pytest.raises(FeatureError, match="features: must hold every feature of the model by name; missing"):
        check_features({NUMERIC: "x"}, feature_names())
