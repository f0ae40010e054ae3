"""Schema-driven fuzzing of the served API: no generated request, valid or not, gets a 5xx or a bare 4xx.

Schemathesis reads the OpenAPI document the running service publishes and generates, per /v1/ operation,
requests that follow the schema (positive) and requests that break it (negative). Each is sent with the key of
the role the endpoint needs, so that it reaches the handler instead of stopping at the key check. Generation is
derandomized: a failure found once is found on every run.

One choice the tools force:
- The cases are drawn with ``operation.as_strategy`` under a plain ``@given`` rather than with
  ``schemathesis.pytest.from_fixture`` (the only loader that waits for a fixture): that loader sets
  ``Node._nodeid``, which pytest 9.2 no longer has.

Besides "no 5xx", every answer must be documented: its status among the operation's responses
(``status_code_conformance``) and its body valid against that response's schema (``response_schema_conformance``),
errors included (serving/openapi.py adds them to BentoML's document).
"""

from __future__ import annotations

import json

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.slow

# Every /v1/ path of the service and the role whose key may call it (serving.service.ROUTES).
ROLES: dict[str, str] = {
    "/v1/failure/risk": "integration",
    "/v1/failure/risk/batch": "integration",
    "/v1/yield/forecast": "integration",
    "/v1/yield/forecast/batch": "integration",
    "/v1/consumption/forecast": "integration",
    "/v1/consumption/forecast/batch": "integration",
    "/v1/outcomes": "integration",
    "/v1/feedback": "planner",
    "/v1/admin/reload": "ml-engineer",
    "/v1/rollout": "ml-engineer",
    "/v1/recommendations": "ml-engineer",
}
EXAMPLES_PER_MODE = 25  # x 2 modes x 11 operations: about 550 requests, well under a minute


@pytest.fixture(scope="module")
def api_schema(service):  # type: ignore[no-untyped-def]
    """The OpenAPI document the running service publishes, read with the 3.1 semantics its schemas use."""
    document = httpx.get(f"{service.url}/docs.json", timeout=30).raise_for_status().json()
    assert document["openapi"] == "3.1.0", document["openapi"]
    return schemathesis.openapi.from_dict(document)


def client_errors_name_the_error(ctx, response, case) -> None:  # type: ignore[no-untyped-def]
    """Every 4xx body is a JSON object with an "error" code (serving.errors), never HTML or a bare string."""
    if not 400 <= response.status_code < 500:
        return
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"{response.status_code} body is not JSON: {response.content[:200]!r}") from None
    if not isinstance(body, dict) or "error" not in body:
        raise AssertionError(f'{response.status_code} body has no "error" key: {response.content[:200]!r}')


def test_every_v1_operation_is_fuzzed_with_its_role(api_schema) -> None:  # type: ignore[no-untyped-def]
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert sorted(op.path for op in operations if op.path.startswith("/v1/")) == sorted(ROLES)
    assert {op.method.upper() for op in operations if op.path.startswith("/v1/")} == {"POST"}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("path", list(ROLES))
def test_no_generated_request_gets_a_server_error(
    api_schema, service, path: str, mode: GenerationMode
) -> None:  # type: ignore[no-untyped-def]
    headers = {"X-API-Key": service.keys[ROLES[path]]}

    @settings(
        max_examples=EXAMPLES_PER_MODE,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=api_schema[path]["POST"].as_strategy(mode))
    def fuzz(case: schemathesis.Case) -> None:
        case.call_and_validate(
            base_url=service.url,
            headers=headers,
            checks=[
                not_a_server_error,
                client_errors_name_the_error,
                status_code_conformance,
                response_schema_conformance,
            ],
        )

    fuzz()
