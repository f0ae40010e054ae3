"""The OpenAPI document the service publishes at /docs.json: BentoML's, completed with keys and error bodies.

BentoML generates the paths and request/response schemas from the typed endpoints, but it cannot describe
what the service adds around them: it lists 400/404/500 with BentoML's own error schema (the service's errors
have another shape and it never answers a 500 on purpose), omits 401/403/409/413/503, and has no place for the
API-key security scheme. :func:`complete_document` fixes that on the generated document, and
:class:`OpenApiDocumentMiddleware` serves the result in place of BentoML's. The version is stamped 3.1.0,
because the schemas are pydantic's JSON Schema 2020-12 (numeric ``exclusiveMinimum``, ``{"type": "null"}``),
which is what OpenAPI 3.1 means and not 3.0.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, Field

from serving.auth import PERMISSION_TEXT, Permission, required_roles

DOCUMENT_PATH = "/docs.json"
OPENAPI_VERSION = "3.1.0"
SECURITY_SCHEMES = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "mesops keys create"},
    "Bearer": {"type": "http", "scheme": "bearer", "description": "the same key as a bearer token"},
}

# What each status means on this service; which of them an endpoint can answer is in ERRORS_BY_PERMISSION.
ERROR_STATUS_TEXT = {
    400: "The request breaks a rule: `detail` names each field and the rule it broke.",
    401: "Missing, unknown or revoked API key; `required_roles` lists the roles that may call.",
    403: "The key's role may not call this endpoint; `required_roles` lists the roles that may.",
    404: "The machine, order, meter or recommendation is not known.",
    409: "Conflicts with what is already recorded (a different decision or outcome for the same thing).",
    413: "The body is over the service's size limit (setting serving_max_body_bytes, 2 MiB by default).",
    503: "Not ready (no champion loaded) or the prediction log is overloaded: retry later.",
}
ERRORS_BY_PERMISSION: dict[Permission, tuple[int, ...]] = {
    Permission.PREDICT: (400, 401, 403, 404, 503),
    Permission.POST_OUTCOME: (400, 401, 403, 409, 503),
    Permission.DECIDE: (400, 401, 403, 404, 409, 503),
    Permission.RELOAD: (400, 401, 403, 503),
    Permission.READ: (400, 401, 403, 503),
}
BODY_ERRORS = (413,)  # what any operation taking a request body can answer besides its own errors


class FieldProblem(BaseModel):
    """One broken rule of an invalid request."""

    field: str = Field(description="dotted path of the field, e.g. requests.3.machine_id")
    rule: str = Field(description="the rule it broke, e.g. string_pattern_mismatch")
    message: str


class ErrorBody(BaseModel):
    """The body of every error the service answers."""

    error: str = Field(
        description="unauthorized, forbidden, invalid_request, not_found, conflict, payload_too_large, "
        "unavailable"
    )
    detail: str | list[FieldProblem]
    required_roles: list[str] | None = Field(default=None, description="on 401 and 403")
    role: str | None = Field(default=None, description="on 403: the role of the key that was refused")


def complete_document(
    document: dict[str, Any], route_permissions: Mapping[str, Permission]
) -> dict[str, Any]:
    """BentoML's generated document with the security scheme, roles and the service's error responses."""
    document = json.loads(json.dumps(document))  # a deep copy: the generated one stays untouched
    document["openapi"] = OPENAPI_VERSION
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    error_schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error_schema.pop("$defs", {}))
    schemas["ErrorBody"] = error_schema
    components["securitySchemes"] = SECURITY_SCHEMES
    for path, permission in route_permissions.items():
        operation = document["paths"].get(path, {}).get("post")
        if operation is None:
            raise ValueError(f"route_permissions: {path} is not an endpoint of the service")
        roles = required_roles(permission)
        operation["security"] = [{"ApiKey": []}, {"Bearer": []}]
        operation["x-mesops-roles"] = roles
        operation["description"] = (
            f"{operation.get('description', '').strip()}\n\nKey of role {' or '.join(roles)} "
            f"(to {PERMISSION_TEXT[permission]})."
        ).strip()
        responses = {str(k): v for k, v in operation["responses"].items() if str(k).startswith("2")}
        body_errors = BODY_ERRORS if "requestBody" in operation else ()
        for status in sorted((*ERRORS_BY_PERMISSION[permission], *body_errors)):
            responses[str(status)] = {
                "description": ERROR_STATUS_TEXT[status],
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
            }
        operation["responses"] = responses
    return document


class OpenApiDocumentMiddleware:
    """Raw ASGI middleware answering GET /docs.json with the completed document (built once, on first use)."""

    def __init__(self, app: Any, *, build: Callable[[], dict[str, Any]]) -> None:
        self.app = app
        self._build = build
        self._body: bytes | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") != DOCUMENT_PATH or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        if self._body is None:
            self._body = json.dumps(self._build()).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(self._body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self._body})
