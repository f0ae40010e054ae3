"""The API key middleware in front of a small Starlette app: who gets through, and what a refusal says."""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from governance import api_keys
from governance.api_keys import SERVED_ROLES, KeyInfo, hash_key
from mesops import database
from serving.auth import (
    ROLE_PERMISSIONS,
    ApiKeyMiddleware,
    Caller,
    KeyRing,
    Permission,
    caller_from_headers,
    caller_from_scope,
)

ROUTES = {
    "/predict": Permission.PREDICT,
    "/outcomes": Permission.POST_OUTCOME,
    "/decide": Permission.DECIDE,
    "/reload": Permission.RELOAD,
    "/recommendations": Permission.READ,
}


def _key(role: str) -> tuple[str, KeyInfo]:
    key_id = secrets.token_hex(4)
    info = KeyInfo(key_id=key_id, role=role, label=f"{role} test", created_at=datetime.now(UTC))  # type: ignore[arg-type]
    return f"mk_{key_id}_{secrets.token_urlsafe(32)}", info


KEYS = {role: _key(role) for role in SERVED_ROLES}


async def _whoami(request: Request) -> JSONResponse:
    caller = request.state.mesops_caller
    assert caller_from_scope(request.scope) == caller
    return JSONResponse({"key_id": caller.key_id, "role": caller.role})


async def _ok(_: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def _app(keyring: KeyRing) -> Starlette:
    routes = [Route(path, _whoami, methods=["GET", "POST"]) for path in ROUTES]
    routes += [Route("/livez", _ok), Route("/metrics", _ok), Route("/unmapped", _ok)]
    app = Starlette(routes=routes)
    app.add_middleware(ApiKeyMiddleware, keyring=keyring, route_permissions=ROUTES)
    return app


@pytest.fixture
def keyring() -> KeyRing:
    return KeyRing({hash_key(key): info for key, info in KEYS.values()})


class Client:
    """A synchronous face on httpx's ASGI transport (one event loop per request; the tests are sync)."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def request(self, method: str, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://mesops.test") as client:
                return await client.request(method, path, headers=headers)

        return asyncio.run(call())

    def get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return self.request("GET", path, headers)

    def post(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return self.request("POST", path, headers)


@pytest.fixture
def client(keyring: KeyRing) -> Client:
    return Client(_app(keyring))


def _as(role: str) -> dict[str, str]:
    return {"X-API-Key": KEYS[role][0]}


@pytest.mark.parametrize(
    "path", ["/livez", "/metrics", "/", "/docs", "/docs.json", "/schema.json", "/readyz"]
)
def test_public_paths_need_no_key(client: Client, path: str) -> None:
    # Paths the toy app does not define answer 404 from the app itself: the middleware let them through.
    assert client.get(path).status_code in (200, 404)


def test_unmapped_paths_pass_through_to_the_app(client: Client) -> None:
    assert client.get("/unmapped").text == "ok"
    assert client.post("/nowhere").status_code == 404


def test_missing_key_is_401_with_a_bearer_challenge(client: Client) -> None:
    response = client.post("/predict")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {
        "error": "unauthorized",
        "detail": "missing API key: send X-API-Key or Authorization: Bearer <key>",
        "required_roles": ["integration"],
    }


@pytest.mark.parametrize("headers", [{"Authorization": "Basic dXNlcjpwYXNz"}, {"X-API-Key": "  "}])
def test_other_credentials_count_as_missing(client: Client, headers: dict[str, str]) -> None:
    response = client.get("/recommendations", headers=headers)
    assert response.status_code == 401 and response.json()["detail"].startswith("missing API key")
    assert response.json()["required_roles"] == ["planner", "ml-engineer", "governance"]


def test_unknown_key_is_401_and_not_echoed(client: Client) -> None:
    forged, _ = _key("integration")
    response = client.post("/predict", headers={"X-API-Key": forged})
    assert response.status_code == 401
    assert response.json() == {
        "error": "unauthorized",
        "detail": "unknown or revoked API key",
        "required_roles": ["integration"],
    }
    assert forged not in response.text and forged not in str(response.headers)


def test_revoked_key_is_refused_after_the_ring_is_replaced(client: Client, keyring: KeyRing) -> None:
    assert client.post("/predict", headers=_as("integration")).status_code == 200
    keyring.replace({hash_key(key): info for role, (key, info) in KEYS.items() if role != "integration"})
    response = client.post("/predict", headers=_as("integration"))
    assert response.status_code == 401 and response.json()["detail"] == "unknown or revoked API key"


def test_wrong_role_is_403_naming_the_roles_that_may(client: Client) -> None:
    response = client.post("/predict", headers=_as("planner"))
    assert response.status_code == 403
    assert response.json() == {
        "error": "forbidden",
        "detail": "role 'planner' may not request predictions; needs one of: integration",
        "required_roles": ["integration"],
        "role": "planner",
    }


@pytest.mark.parametrize("role", SERVED_ROLES)
@pytest.mark.parametrize("path", ROUTES)
def test_role_table(client: Client, role: str, path: str) -> None:
    allowed = {
        "integration": {"/predict", "/outcomes"},
        "planner": {"/decide", "/recommendations"},
        "ml-engineer": {"/reload", "/recommendations"},
        "governance": {"/recommendations"},
    }[role]
    assert client.post(path, headers=_as(role)).status_code == (200 if path in allowed else 403)


def test_every_served_role_has_permissions() -> None:
    assert set(ROLE_PERMISSIONS) == set(SERVED_ROLES)


@pytest.mark.parametrize(
    "header",
    [
        lambda key: {"X-API-Key": key},
        lambda key: {"Authorization": f"Bearer {key}"},
        lambda key: {"authorization": f"bearer  {key} "},
    ],
    ids=["x-api-key", "bearer", "bearer-lowercase"],
)
def test_success_puts_the_caller_in_the_scope(client: Client, header) -> None:  # type: ignore[no-untyped-def]
    key, info = KEYS["planner"]
    response = client.post("/decide", headers=header(key))
    assert response.status_code == 200
    assert response.json() == {"key_id": info.key_id, "role": "planner"}


def test_caller_from_headers(keyring: KeyRing) -> None:
    key, info = KEYS["governance"]
    assert caller_from_headers({"X-Api-Key": key}, keyring) == Caller(info.key_id, "governance")
    assert caller_from_headers({"Authorization": f"Bearer {key}"}, keyring) == Caller(
        info.key_id, "governance"
    )
    assert caller_from_headers({"X-API-Key": "mk_00000000_nope"}, keyring) is None
    assert caller_from_headers({}, keyring) is None


def test_public_paths_cannot_be_mapped() -> None:
    with pytest.raises(ValueError, match="public paths cannot require a key: /metrics"):
        ApiKeyMiddleware(_ok, keyring=KeyRing(), route_permissions={"/metrics": Permission.READ})  # type: ignore[arg-type]


def test_keyring_copies_its_snapshot() -> None:
    key, info = KEYS["integration"]
    snapshot = {hash_key(key): info}
    ring = KeyRing(snapshot)
    snapshot.clear()
    assert ring.lookup(key) == info and len(ring) == 1


def test_refusals_never_log_the_presented_key(client: Client) -> None:
    records: list[str] = []
    handler = logging.Handler(level=logging.DEBUG)
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("serving.auth")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        forged, _ = _key("integration")
        client.post("/predict", headers={"Authorization": f"Bearer {forged}"})
        client.post("/predict", headers=_as("planner"))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    assert len(records) == 2 and KEYS["planner"][1].key_id in records[1]
    assert all(forged not in r and KEYS["planner"][0] not in r for r in records)


def test_keys_from_the_database_through_the_ring(settings) -> None:  # type: ignore[no-untyped-def]
    url = settings.resolved_database_url
    database.upgrade(url)
    created = api_keys.create_key(url, "integration", "mes")
    ring = KeyRing()
    assert ring.refresh(url) == 1
    client = Client(_app(ring))
    headers = {"X-API-Key": created.key}
    assert client.post("/predict", headers).json()["key_id"] == created.key_id
    api_keys.revoke_key(url, created.key_id)
    assert client.post("/predict", headers).status_code == 200  # the ring is a snapshot until refreshed
    assert ring.refresh(url) == 0
    assert client.post("/predict", headers).status_code == 401


def _raw_call(scope: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    reached: list[str] = []
    sent: list[dict[str, Any]] = []

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        reached.append(scope["type"])

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    middleware = ApiKeyMiddleware(inner, keyring=KeyRing(), route_permissions=ROUTES)
    asyncio.run(middleware(scope, receive, send))
    return reached, sent


def test_lifespan_passes_through() -> None:
    assert _raw_call({"type": "lifespan"}) == (["lifespan"], [])


def test_websocket_to_a_mapped_path_without_key_is_closed() -> None:
    reached, sent = _raw_call({"type": "websocket", "path": "/predict", "headers": []})
    assert reached == [] and sent == [{"type": "websocket.close", "code": 1008}]
