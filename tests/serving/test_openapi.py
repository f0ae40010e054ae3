"""The published OpenAPI document: BentoML's, completed with the key scheme, roles and the service's errors."""

from __future__ import annotations

from typing import Any

import pytest

from serving.auth import Permission
from serving.openapi import ErrorBody, complete_document

ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}


def _generated() -> dict[str, Any]:
    """The shape BentoML generates: 200 plus its own 400/404/500 referring to its own schemas."""
    bentoml_error = {
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InvalidArgument"}}}
    }
    operation = {
        "description": "Failure risk.",
        "responses": {200: {"description": "ok"}, 400: bentoml_error, 404: bentoml_error, 500: bentoml_error},
    }
    return {
        "openapi": "3.0.2",
        "paths": {
            "/v1/failure/risk": {"post": operation},
            "/v1/rollout": {"post": {"responses": {200: {"description": "ok"}, 500: bentoml_error}}},
        },
    }


def test_each_operation_lists_its_roles_security_and_only_the_errors_it_can_answer() -> None:
    generated = _generated()
    document = complete_document(
        generated, {"/v1/failure/risk": Permission.PREDICT, "/v1/rollout": Permission.READ}
    )
    risk = document["paths"]["/v1/failure/risk"]["post"]
    assert set(risk["responses"]) == {"200", "400", "401", "403", "404", "503"}  # no 500: never on purpose
    assert risk["responses"]["401"]["content"]["application/json"]["schema"] == ERROR_REF
    assert risk["x-mesops-roles"] == ["integration"] and "Key of role integration" in risk["description"]
    rollout = document["paths"]["/v1/rollout"]["post"]
    assert set(rollout["responses"]) == {"200", "400", "401", "403", "503"}
    assert rollout["x-mesops-roles"] == ["planner", "ml-engineer", "governance"]
    assert document["openapi"] == "3.1.0" and generated["openapi"] == "3.0.2"  # the input is not modified
    assert {"ErrorBody", "FieldProblem"} <= set(document["components"]["schemas"])
    assert set(document["components"]["securitySchemes"]) == {"ApiKey", "Bearer"}


def test_a_route_the_service_does_not_have_is_refused() -> None:
    with pytest.raises(ValueError, match="/v1/nowhere"):
        complete_document(_generated(), {"/v1/nowhere": Permission.READ})


def test_the_error_schema_accepts_the_bodies_the_service_sends() -> None:
    ErrorBody.model_validate(
        {"error": "forbidden", "detail": "no", "required_roles": ["planner"], "role": "x"}
    )
    ErrorBody.model_validate(
        {
            "error": "invalid_request",
            "detail": [{"field": "a.b", "rule": "missing", "message": "Field required"}],
        }
    )
