"""The mesops prediction service (BentoML): forecasts for MES integrations, recommendations for planners.

    mesops serve            # or: bentoml serve serving.service:MesopsService --port 3000

Every endpoint is a POST taking and returning JSON typed by serving/schemas.py; the OpenAPI 3.1 document, with
each endpoint's roles and error responses, is at /docs.json (serving/openapi.py). Keys: ``X-API-Key: <key>`` or ``Authorization: Bearer <key>`` (``mesops keys create``).
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from typing import Any

import anyio
import bentoml
from pydantic import BaseModel
from starlette.responses import JSONResponse, Response

from governance import recommendations as recs
from governance.registry import model_name
from mesops.settings import get_settings
from serving import handlers, limits, scoring
from serving.auth import ApiKeyMiddleware, KeyRing, Permission, caller_from_scope
from serving.context import UnknownEntityError
from serving.errors import ValidationBodyMiddleware, error_response, quiet_client_errors
from serving.openapi import OpenApiDocumentMiddleware, complete_document
from serving.prediction_log import LogOverloadedError, LogWriterStateError
from serving.runtime import NotReadyError, ServingRuntime
from serving.schemas import (
    ConsumptionBatch,
    ConsumptionBatchResponse,
    ConsumptionRequest,
    ConsumptionResponse,
    FailureRiskBatch,
    FailureRiskBatchResponse,
    FailureRiskRequest,
    FailureRiskResponse,
    FeedbackRequest,
    FeedbackResponse,
    OutcomeRequest,
    OutcomeResponse,
    YieldBatch,
    YieldBatchResponse,
    YieldRequest,
    YieldResponse,
)

ROUTES: dict[str, Permission] = {
    "/v1/failure/risk": Permission.PREDICT,
    "/v1/failure/risk/batch": Permission.PREDICT,
    "/v1/yield/forecast": Permission.PREDICT,
    "/v1/yield/forecast/batch": Permission.PREDICT,
    "/v1/consumption/forecast": Permission.PREDICT,
    "/v1/consumption/forecast/batch": Permission.PREDICT,
    "/v1/outcomes": Permission.POST_OUTCOME,
    "/v1/feedback": Permission.DECIDE,
    "/v1/admin/reload": Permission.RELOAD,
    "/v1/rollout": Permission.READ,
    "/v1/recommendations": Permission.READ,
}
SWITCH_INTERVAL_S = 0.001
KEYRING = KeyRing()  # filled by the runtime's refresh; read by the key middleware on every request
quiet_client_errors()


class RequestError(Exception):
    """A request that cannot be answered: HTTP status, error code and a sentence naming the field."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


def _guarded(endpoint: str, work: Callable[[], Any]) -> Any:
    """Run ``work``; known failures become JSON error responses (never a 500 with a traceback).

    An answer that is a pydantic model is sent as one JSON body with its length: BentoML would stream it
    chunked (three writes through every middleware per response, a fifth of a replica's CPU under load).
    """
    try:
        answer = work()
        return _json(answer) if isinstance(answer, BaseModel) else answer
    except RequestError as err:
        return error_response(err.status, err.error, err.detail, endpoint)
    except (UnknownEntityError, recs.RecommendationNotFoundError) as err:
        return error_response(404, "not_found", str(err), endpoint)
    except (scoring.FeatureError, recs.DecisionRuleError, recs.OutcomeRuleError) as err:
        return error_response(400, "invalid_request", str(err), endpoint)
    except (recs.RecommendationConflictError, recs.OutcomeConflictError) as err:
        return error_response(409, "conflict", str(err), endpoint)
    except recs.DecisionRoleError as err:
        return error_response(403, "forbidden", str(err), endpoint)
    except (NotReadyError, LogOverloadedError, LogWriterStateError, TimeoutError) as err:
        return error_response(503, "unavailable", str(err), endpoint)


@bentoml.service(
    name="mesops",
    workers=1,
    traffic={"timeout": 30},
    logging={"access": {"enabled": False}},
    tracing={"excluded_urls": [".*"]},  # OpenTelemetry spans cost ~0.4 ms per request and nothing reads them
)
class MesopsService:
    """Failure, yield and consumption forecasts with rollout routing, recommendations and feedback."""

    def __init__(self) -> None:
        self.settings = get_settings()
        self.runtime = ServingRuntime(self.settings, keyring=KEYRING)
        self.runtime.start()
        # The loaded models and feature context are millions of long-lived objects: without this, every full
        # collection walks them all and stalls requests (max latency 300 ms measured; 20 ms frozen).
        gc.freeze()
        # Requests run on the event loop; the log writer, the refresh and the database-bound endpoints run in
        # threads. A thread holding the GIL keeps the loop waiting up to this interval (5 ms by default) per
        # hand-off: a shorter one bounds the requests' queueing behind them (p99 under mixed load).
        sys.setswitchinterval(SWITCH_INTERVAL_S)

    def __is_ready__(self) -> bool:
        return self.runtime.ready

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        """Write the prediction log rows still waiting before the process ends."""
        self.runtime.close()

    # --- predictions -----------------------------------------------------------------------------------
    @bentoml.api(route="/v1/failure/risk")
    async def failure_risk(self, request: FailureRiskRequest, /) -> FailureRiskResponse:
        """Failure risk of a machine within the next shift, from its latest sensor context or given features."""
        return _guarded("/v1/failure/risk", lambda: self._failure(request, "/v1/failure/risk"))

    @bentoml.api(route="/v1/failure/risk/batch")
    async def failure_risk_batch(self, batch: FailureRiskBatch, /) -> FailureRiskBatchResponse:
        """Failure risk of several machines."""
        endpoint = "/v1/failure/risk/batch"
        return _guarded(
            endpoint,
            lambda: FailureRiskBatchResponse(results=[self._failure(r, endpoint) for r in batch.requests]),
        )

    @bentoml.api(route="/v1/yield/forecast")
    async def yield_forecast(self, request: YieldRequest, /) -> YieldResponse:
        """Expected yield of a released order and the extra material its scrap needs."""
        work = lambda: self._yield(request, "/v1/yield/forecast")  # noqa: E731
        if request.order is None:  # an ingested order: its features are looked up, as fast as a failure risk
            return _guarded("/v1/yield/forecast", work)
        return await anyio.to_thread.run_sync(_guarded, "/v1/yield/forecast", work)  # features built: ~0.1 s

    @bentoml.api(route="/v1/yield/forecast/batch")
    async def yield_forecast_batch(self, batch: YieldBatch, /) -> YieldBatchResponse:
        """Expected yield of several orders."""
        endpoint = "/v1/yield/forecast/batch"
        return await anyio.to_thread.run_sync(
            _guarded,
            endpoint,
            lambda: YieldBatchResponse(results=[self._yield(r, endpoint) for r in batch.requests]),
        )

    @bentoml.api(route="/v1/consumption/forecast")
    async def consumption_forecast(self, request: ConsumptionRequest, /) -> ConsumptionResponse:
        """A meter's energy for a day: total and quarter-hours, with the interval."""
        return await anyio.to_thread.run_sync(
            _guarded,
            "/v1/consumption/forecast",
            lambda: self._consumption(request, "/v1/consumption/forecast"),
        )

    @bentoml.api(route="/v1/consumption/forecast/batch")
    async def consumption_forecast_batch(self, batch: ConsumptionBatch, /) -> ConsumptionBatchResponse:
        """Energy forecasts of several meters or days."""
        endpoint = "/v1/consumption/forecast/batch"
        return await anyio.to_thread.run_sync(
            _guarded,
            endpoint,
            lambda: ConsumptionBatchResponse(
                results=[self._consumption(r, endpoint) for r in batch.requests]
            ),
        )

    # --- feedback and outcomes ----------------------------------------------------------------------------
    @bentoml.api(route="/v1/feedback")
    async def feedback(self, decision: FeedbackRequest, /, ctx: bentoml.Context) -> FeedbackResponse:
        """A planner accepts, rejects or modifies a recommendation (idempotent; a second, different decision
        is a 409)."""
        caller = caller_from_scope(ctx.request.scope)
        result = await anyio.to_thread.run_sync(
            _guarded, "/v1/feedback", lambda: self._decide(decision, caller)
        )
        return _with_status(ctx, result)

    @bentoml.api(route="/v1/outcomes")
    async def outcomes(self, outcome: OutcomeRequest, /, ctx: bentoml.Context) -> OutcomeResponse:
        """What really happened (failure, good quantity, kWh), joined to the predictions it resolves."""
        caller = caller_from_scope(ctx.request.scope)
        result = await anyio.to_thread.run_sync(
            _guarded, "/v1/outcomes", lambda: self._outcome(outcome, caller)
        )
        return _with_status(ctx, result)

    # --- operations ----------------------------------------------------------------------------------------
    @bentoml.api(route="/v1/admin/reload")
    async def reload(self) -> dict[str, dict[str, str | None]]:
        """Re-read aliases, phases and keys now (they are also re-read every few seconds)."""
        return await anyio.to_thread.run_sync(_guarded, "/v1/admin/reload", self.runtime.refresh)

    @bentoml.api(route="/v1/rollout")
    async def rollout(self) -> dict[str, dict[str, str | None]]:
        """Which versions answer for each model now, and the challenger's phase."""
        return self.runtime.loaded()

    @bentoml.api(route="/v1/recommendations")
    async def recommendations(
        self, model: str | None = None, status: recs.RecommendationStatus | None = None, limit: int = 100
    ) -> list[recs.RecommendationView]:
        """Recent recommendations, newest first, optionally of one model and status."""

        def work() -> Any:
            self.runtime.writer.flush()
            name = None if model is None else model_name(model.removeprefix("mesops-"))
            return recs.list_recommendations(
                self.runtime.db_url, model_name=name, status=status, limit=max(1, min(limit, 1000))
            )

        return await anyio.to_thread.run_sync(_guarded, "/v1/recommendations", work)

    # --- the work behind the endpoints ---------------------------------------------------------------------
    def _failure(self, request: FailureRiskRequest, endpoint: str) -> FailureRiskResponse:
        return handlers.failure(self.runtime, request, endpoint)

    def _yield(self, request: YieldRequest, endpoint: str) -> YieldResponse:
        return handlers.yield_forecast(self.runtime, request, endpoint)

    def _consumption(self, request: ConsumptionRequest, endpoint: str) -> ConsumptionResponse:
        return handlers.consumption(self.runtime, request, endpoint)

    def _decide(self, request: FeedbackRequest, caller: Any) -> FeedbackResponse | JSONResponse:
        if caller is None:
            raise RequestError(401, "unauthorized", "missing API key")

        def decide() -> tuple[recs.RecommendationView, bool]:
            return recs.decide(
                self.runtime.db_url,
                request.recommendation_id,
                request.decision,
                request.reason_code,
                modified_value=request.modified_value,
                key_id=caller.key_id,
                role=caller.role,
            )

        try:
            view, recorded = decide()
        except recs.RecommendationNotFoundError:
            self.runtime.writer.flush()  # it may still be waiting in the prediction log batch
            view, recorded = decide()
        return FeedbackResponse(recommendation=view, recorded=recorded)

    def _outcome(self, request: OutcomeRequest, caller: Any) -> OutcomeResponse:
        if caller is None:
            raise RequestError(401, "unauthorized", "missing API key")
        return handlers.outcome(self.runtime, request, caller.key_id)


def _json(answer: BaseModel) -> Response:
    return Response(answer.model_dump_json(), media_type="application/json")


def _with_status(ctx: bentoml.Context, result: Any) -> Any:
    """An error response of a handler that takes the context keeps its status (BentoML applies the context's)."""
    if isinstance(result, JSONResponse):
        ctx.response.status_code = result.status_code
    return result


MesopsService.add_asgi_middleware(
    limits.BodyLimitMiddleware, max_body_bytes=lambda: get_settings().serving_max_body_bytes, endpoints=ROUTES
)
MesopsService.add_asgi_middleware(ApiKeyMiddleware, keyring=KEYRING, route_permissions=ROUTES)
MesopsService.add_asgi_middleware(ValidationBodyMiddleware)
MesopsService.add_asgi_middleware(
    OpenApiDocumentMiddleware, build=lambda: complete_document(MesopsService.openapi_spec.asdict(), ROUTES)
)
