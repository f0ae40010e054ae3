"""The mesops prediction service (BentoML): forecasts for MES integrations, recommendations for planners.

    mesops serve            # or: bentoml serve serving.service:MesopsService --port 3000

Every endpoint is a POST taking and returning JSON typed by serving/schemas.py; the OpenAPI 3.1 document, with
each endpoint's roles and error responses, is at /docs.json (serving/openapi.py). Keys: ``X-API-Key: <key>`` or ``Authorization: Bearer <key>`` (``mesops keys create``).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import anyio
import bentoml
from starlette.responses import JSONResponse

from governance import recommendations as recs
from governance.registry import model_name
from mesops.settings import get_settings
from serving import advice, scoring
from serving.auth import ApiKeyMiddleware, KeyRing, Permission, caller_from_scope
from serving.context import UnknownEntityError
from serving.errors import ValidationBodyMiddleware, error_response, quiet_client_errors
from serving.openapi import OpenApiDocumentMiddleware, complete_document
from serving.prediction_log import LogOverloadedError, LogWriterStateError
from serving.runtime import NotReadyError, Scored, ServingRuntime
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
    RecommendationOut,
    SlotForecast,
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
KEYRING = KeyRing()  # filled by the runtime's refresh; read by the key middleware on every request
quiet_client_errors()


class RequestError(Exception):
    """A request that cannot be answered: HTTP status, error code and a sentence naming the field."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


def _guarded(endpoint: str, work: Callable[[], Any]) -> Any:
    """Run ``work``; known failures become JSON error responses (never a 500 with a traceback)."""
    try:
        return work()
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
        return await anyio.to_thread.run_sync(
            _guarded, "/v1/yield/forecast", lambda: self._yield(request, "/v1/yield/forecast")
        )

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
        started = time.perf_counter()
        context = self.runtime.require_context()
        if request.features is not None:
            scoring.check_features(request.features, self.runtime.arms("failure").champion.features)
            features = request.features
            forecast_at = datetime.now(UTC)
        else:
            machine = context.machine(request.machine_id)
            features, forecast_at = machine.features, machine.forecast_at.to_pydatetime()
        correlation = request.correlation_id or f"{request.machine_id}@{forecast_at.isoformat()}"

        def score(forecaster: Any) -> dict[str, Any]:
            return scoring.score_failure(forecaster, features)

        scored = self.runtime.answer(
            "failure",
            request.machine_id,
            score,
            lambda out: advice.failure_advice(
                request.machine_id, out["probability"], out["threshold"], scoring.HORIZON_HOURS
            ),
        )
        self.runtime.log(
            scored,
            endpoint=endpoint,
            entity_id=request.machine_id,
            line_id=context.line_of_machine(request.machine_id),
            correlation_id=correlation,
            features=features,
            score_many=scoring.score_failure_many,
            payload=features,
            started=started,
        )
        return FailureRiskResponse(
            **_answer(scored, correlation),
            machine_id=request.machine_id,
            probability=scored.output["probability"],
            alarm=scored.output["alarm"],
            threshold=scored.output["threshold"],
            forecast_at=forecast_at,
            horizon_hours=scoring.HORIZON_HOURS,
        )

    def _yield(self, request: YieldRequest, endpoint: str) -> YieldResponse:
        started = time.perf_counter()
        context = self.runtime.require_context()
        if request.order is not None:
            header = {"order_id": request.order_id, **request.order.model_dump()}
        else:
            header = context.order_header(request.order_id)
        features = context.yield_features(header)
        planned = float(header["planned_qty"])
        correlation = request.correlation_id or request.order_id

        def score(forecaster: Any) -> dict[str, Any]:
            return scoring.score_yield(forecaster, features)

        scored = self.runtime.answer(
            "yield",
            request.order_id,
            score,
            lambda out: advice.yield_advice(request.order_id, out["yield_fraction"], planned),
        )
        self.runtime.log(
            scored,
            endpoint=endpoint,
            entity_id=request.order_id,
            line_id=str(header["line_id"]),
            correlation_id=correlation,
            features=features,
            score_many=scoring.score_yield_many,
            payload=features,
            started=started,
        )
        fraction = scored.output["yield_fraction"]
        return YieldResponse(
            **_answer(scored, correlation),
            order_id=request.order_id,
            yield_fraction=fraction,
            expected_good_qty=fraction * planned,
            planned_qty=planned,
        )

    def _consumption(self, request: ConsumptionRequest, endpoint: str) -> ConsumptionResponse:
        started = time.perf_counter()
        rows = self.runtime.require_context().consumption_features(request.meter_id, request.day)
        day = rows["target_day"].iloc[0].date()
        correlation = request.correlation_id or f"{request.meter_id}@{day.isoformat()}"

        def score(forecaster: Any) -> dict[str, Any]:
            return scoring.score_consumption(forecaster, rows)

        scored = self.runtime.answer(
            "consumption",
            request.meter_id,
            score,
            lambda out: advice.consumption_advice(
                request.meter_id,
                day.isoformat(),
                out["total_kwh"],
                out["lower_kwh"],
                out["upper_kwh"],
                out["peak"],
            ),
        )
        features = {
            "series": request.meter_id,
            "day": day.isoformat(),
            "rows": len(rows),
            **{
                k: _plain(v)
                for k, v in rows.iloc[0].items()
                if k not in ("series", "group", "target_day", "ts")
            },
        }
        self.runtime.log(
            scored,
            endpoint=endpoint,
            entity_id=request.meter_id,
            line_id=str(rows["group"].iloc[0]) if "group" in rows else None,
            correlation_id=correlation,
            features=features,
            score_many=scoring.score_consumption_many,
            payload=rows,
            started=started,
        )
        out = scored.output
        return ConsumptionResponse(
            **_answer(scored, correlation),
            meter_id=request.meter_id,
            day=day,
            total_kwh=out["total_kwh"],
            lower_kwh=out["lower_kwh"],
            upper_kwh=out["upper_kwh"],
            coverage=out["coverage"],
            slots=[SlotForecast(**slot) for slot in out["slots"]],
        )

    def _decide(self, request: FeedbackRequest, caller: Any) -> FeedbackResponse | JSONResponse:
        if caller is None:
            raise RequestError(401, "unauthorized", "missing API key")
        try:
            recs.get(self.runtime.db_url, request.recommendation_id)
        except recs.RecommendationNotFoundError:
            self.runtime.writer.flush()  # it may still be waiting in the prediction log batch
        view, recorded = recs.decide(
            self.runtime.db_url,
            request.recommendation_id,
            request.decision,
            request.reason_code,
            modified_value=request.modified_value,
            key_id=caller.key_id,
            role=caller.role,
        )
        return FeedbackResponse(recommendation=view, recorded=recorded)

    def _outcome(self, request: OutcomeRequest, caller: Any) -> OutcomeResponse:
        if caller is None:
            raise RequestError(401, "unauthorized", "missing API key")
        self.runtime.writer.flush()  # so the count of resolved predictions includes those still in flight
        name = model_name(request.model)
        stored, recorded = recs.record_outcome(
            self.runtime.db_url,
            model_name=name,
            correlation_id=request.correlation_id,
            entity_id=request.entity_id,
            actual=request.actual,
            observed_at=request.observed_at,
            key_id=caller.key_id,
        )
        # one indexed count, not the whole resolved log of the model on every post
        count = recs.predictions_resolved_by(self.runtime.db_url, name, request.correlation_id)
        return OutcomeResponse(
            model=name, correlation_id=stored.correlation_id, recorded=recorded, predictions=count
        )


def _with_status(ctx: bentoml.Context, result: Any) -> Any:
    """An error response of a handler that takes the context keeps its status (BentoML applies the context's)."""
    if isinstance(result, JSONResponse):
        ctx.response.status_code = result.status_code
    return result


def _answer(scored: Scored, correlation_id: str) -> dict[str, Any]:
    return {
        "request_id": scored.request_id,
        "correlation_id": correlation_id,
        "model": scored.arms.model_name,
        "version": scored.arms.version(scored.answered_by),
        "phase": scored.arms.phase_name,
        "answered_by": scored.answered_by,
        "recommendation": RecommendationOut(
            recommendation_id=scored.recommendation_id,
            action_class=scored.advice.action_class,
            text=scored.advice.text,
            status=scored.status,
        ),
    }


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


MesopsService.add_asgi_middleware(ApiKeyMiddleware, keyring=KEYRING, route_permissions=ROUTES)
MesopsService.add_asgi_middleware(ValidationBodyMiddleware)
MesopsService.add_asgi_middleware(
    OpenApiDocumentMiddleware, build=lambda: complete_document(MesopsService.openapi_spec.asdict(), ROUTES)
)
