"""Who may call what on the served API: permissions per role, the active-key ring and the ASGI middleware.

The service hands the middleware its own map of path -> permission, so this module knows roles and
permissions but not the endpoint list. Public paths (health, metrics, the OpenAPI document and Swagger UI)
need no key; a path outside the map is passed through untouched so the app answers 404 (or serves its static
assets) itself. Nothing here writes the presented key anywhere: bodies and log lines name the key id at most.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from governance.api_keys import SERVED_ROLES, KeyInfo, hash_key

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PUBLIC_PATHS: frozenset[str] = frozenset(
    {"/", "/docs", "/docs.json", "/schema.json", "/livez", "/healthz", "/readyz", "/metrics"}
)
CALLER_STATE_KEY = "mesops_caller"


class Permission(StrEnum):
    """What a served endpoint does, as far as access is concerned."""

    PREDICT = "predict"
    POST_OUTCOME = "post_outcome"
    DECIDE = "decide"
    RELOAD = "reload"
    READ = "read"


PERMISSION_TEXT: dict[Permission, str] = {
    Permission.PREDICT: "request predictions",
    Permission.POST_OUTCOME: "post outcomes",
    Permission.DECIDE: "decide recommendations",
    Permission.RELOAD: "reload models and rollout state",
    Permission.READ: "read recommendations, the prediction log or rollout state",
}

# governance reads everything and changes nothing; only the integration feeds predictions and outcomes.
ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    "integration": frozenset({Permission.PREDICT, Permission.POST_OUTCOME}),
    "planner": frozenset({Permission.DECIDE, Permission.READ}),
    "ml-engineer": frozenset({Permission.RELOAD, Permission.READ}),
    "governance": frozenset({Permission.READ}),
}


def required_roles(permission: Permission) -> list[str]:
    """The roles holding a permission, in the order of SERVED_ROLES."""
    return [role for role in SERVED_ROLES if permission in ROLE_PERMISSIONS[role]]


@dataclass(frozen=True, slots=True)
class Caller:
    """The identity of an accepted request: the key id (never the key) and its role."""

    key_id: str
    role: str


class KeyRing:
    """Thread-safe holder of the active keys (sha256 -> KeyInfo), swapped whole on every refresh.

    Readers take the current dict reference once and never see a half-built snapshot, so lookups need no
    lock; the lock only orders concurrent `replace` calls.
    """

    def __init__(self, snapshot: Mapping[str, KeyInfo] | None = None) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, KeyInfo] = dict(snapshot or {})

    def replace(self, snapshot: Mapping[str, KeyInfo]) -> None:
        """Make `snapshot` (e.g. `governance.api_keys.active_keys(url)`) the set of accepted keys."""
        fresh = dict(snapshot)  # a copy: later changes to the caller's mapping do not leak in
        with self._lock:
            self._keys = fresh

    def refresh(self, db_url: str) -> int:
        """Re-read the active keys from the platform database; returns how many there are."""
        from governance.api_keys import active_keys

        snapshot = active_keys(db_url)
        self.replace(snapshot)
        return len(snapshot)

    def lookup(self, presented_key: str) -> KeyInfo | None:
        """The active key matching a presented key, or None."""
        # No constant-time compare needed: the secret is never compared, only its sha256 is used as a dict
        # key. Timing can at best reveal how a *hash* of the guess relates to stored hashes, which says
        # nothing usable about a preimage of 256 random bits.
        return self._keys.get(hash_key(presented_key))

    def __len__(self) -> int:
        return len(self._keys)


def presented_key(x_api_key: str | None, authorization: str | None) -> str | None:
    """The key a request presents: `X-API-Key: <key>`, else `Authorization: Bearer <key>`; None if neither."""
    if x_api_key and x_api_key.strip():
        return x_api_key.strip()
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None


def caller_from_headers(headers: Mapping[str, str], keyring: KeyRing) -> Caller | None:
    """Re-derive the caller from request headers (any case of the names); None without an active key."""
    lowered = {name.lower(): value for name, value in headers.items()}
    key = presented_key(lowered.get("x-api-key"), lowered.get("authorization"))
    info = None if key is None else keyring.lookup(key)
    return None if info is None else Caller(info.key_id, info.role)


def caller_from_scope(scope: Mapping[str, Any]) -> Caller | None:
    """The caller the middleware put in an ASGI scope (`request.scope` in a handler), or None."""
    return scope.get("state", {}).get(CALLER_STATE_KEY)


class ApiKeyMiddleware:
    """Raw ASGI middleware: refuses a mapped path without an active key of a role holding its permission.

    Added by the service with `Service.add_asgi_middleware(ApiKeyMiddleware, keyring=..., route_permissions=...)`.
    On success the caller is in `scope["state"]["mesops_caller"]` (`request.state.mesops_caller`).
    """

    def __init__(
        self, app: ASGIApp, *, keyring: KeyRing, route_permissions: Mapping[str, Permission]
    ) -> None:
        public = sorted(PUBLIC_PATHS.intersection(route_permissions))
        if public:
            raise ValueError(f"route_permissions: public paths cannot require a key: {', '.join(public)}")
        self.app = app
        self.keyring = keyring
        self.route_permissions = {path: Permission(value) for path, value in route_permissions.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the key of an HTTP request to a mapped path; pass everything else through."""
        kind = scope["type"]
        permission = self.route_permissions.get(scope.get("path", ""))
        # lifespan (no path), public and unmapped paths, and CORS preflights (browsers send them without
        # credentials; the app's routes do not answer OPTIONS with data) go straight through.
        if permission is None or (kind == "http" and scope["method"] == "OPTIONS"):
            await self.app(scope, receive, send)
            return
        key = _key_from_raw_headers(scope.get("headers", ()))
        info = None if key is None else self.keyring.lookup(key)
        if info is not None and permission in ROLE_PERMISSIONS.get(info.role, ()):
            scope.setdefault("state", {})[CALLER_STATE_KEY] = Caller(info.key_id, info.role)
            await self.app(scope, receive, send)
            return
        status, body, headers = _refusal(permission, key is not None, info)
        logger.info(
            "refused %s %s: %s%s",
            scope.get("method", kind),
            scope["path"],
            body["error"],
            "" if info is None else f" (key {info.key_id}, role {info.role})",
        )
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # policy violation
            return
        await _send_json(send, status, body, headers)


def _key_from_raw_headers(raw: Any) -> str | None:
    x_api_key = authorization = None
    for name, value in raw:  # ASGI header names are lower-case bytes
        if name == b"x-api-key":
            x_api_key = value.decode("latin-1")
        elif name == b"authorization":
            authorization = value.decode("latin-1")
    return presented_key(x_api_key, authorization)


def _refusal(
    permission: Permission, key_given: bool, info: KeyInfo | None
) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]:
    roles = required_roles(permission)
    if not key_given:
        detail = "missing API key: send X-API-Key or Authorization: Bearer <key>"
        return 401, _body("unauthorized", detail, roles), [(b"www-authenticate", b"Bearer")]
    if info is None:
        challenge = b'Bearer error="invalid_token"'
        return (
            401,
            _body("unauthorized", "unknown or revoked API key", roles),
            [(b"www-authenticate", challenge)],
        )
    detail = f"role {info.role!r} may not {PERMISSION_TEXT[permission]}; needs one of: {', '.join(roles)}"
    return 403, _body("forbidden", detail, roles) | {"role": info.role}, []


def _body(error: str, detail: str, roles: list[str]) -> dict[str, Any]:
    return {"error": error, "detail": detail, "required_roles": roles}


async def _send_json(
    send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]
) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
