"""The work behind each prediction: features, routing by phase, recommendation, prediction log.

One code path for every way a prediction is asked for: the HTTP service (serving/service.py) and the MES event
bridge (serving/bridge.py) both call these functions with a :class:`~serving.runtime.ServingRuntime`.

A caller that must know its record is stored before it acts (the bridge acknowledges an event only then) passes
:class:`FixedIds` (ids derived from the event, so a redelivered event maps onto the same rows), flushes the
runtime's log writer and checks :func:`logged_request_ids`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from governance import recommendations as recs
from governance.registry import model_name
from mesops import database
from mesops.serving_tables import PredictionLogEntry
from serving import advice, scoring
from serving.runtime import Scored, ServingRuntime
from serving.schemas import (
    ConsumptionRequest,
    ConsumptionResponse,
    FailureRiskRequest,
    FailureRiskResponse,
    OutcomeRequest,
    OutcomeResponse,
    RecommendationOut,
    SlotForecast,
    YieldRequest,
    YieldResponse,
)


@dataclass(frozen=True, slots=True)
class FixedIds:
    """Request and recommendation ids chosen by the caller instead of random ones (idempotent callers)."""

    request_id: str
    recommendation_id: str


class NotCommittedError(RuntimeError):
    """A logged prediction was not stored (the writer rejected it or timed out): the caller must not ack."""


def failure(
    runtime: ServingRuntime, request: FailureRiskRequest, endpoint: str, ids: FixedIds | None = None
) -> FailureRiskResponse:
    """Failure risk of a machine within the next shift, from its latest sensor context or given features."""
    started = time.perf_counter()
    context = runtime.require_context()
    if request.features is not None:
        scoring.check_features(request.features, runtime.arms("failure").champion.features)
        features = request.features
        forecast_at = datetime.now(UTC)
    else:
        machine = context.machine(request.machine_id)
        features, forecast_at = machine.features, machine.forecast_at.to_pydatetime()
    correlation = request.correlation_id or f"{request.machine_id}@{forecast_at.isoformat()}"
    scored = _serve(
        runtime,
        Served("failure", request.machine_id, context.line_of_machine(request.machine_id), correlation),
        scoring.score_failure,
        scoring.score_failure_many,
        features,
        lambda out: advice.failure_advice(
            request.machine_id, out["probability"], out["threshold"], scoring.HORIZON_HOURS
        ),
        Logged(endpoint, features, ids, started),
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


def yield_forecast(
    runtime: ServingRuntime, request: YieldRequest, endpoint: str, ids: FixedIds | None = None
) -> YieldResponse:
    """Expected yield of a released order and the extra material its scrap needs."""
    started = time.perf_counter()
    context = runtime.require_context()
    if request.order is not None:
        header = {"order_id": request.order_id, **request.order.model_dump()}
    else:
        header = context.order_header(request.order_id)
    features = context.yield_features(header)
    planned = float(header["planned_qty"])
    correlation = request.correlation_id or request.order_id
    scored = _serve(
        runtime,
        Served("yield", request.order_id, str(header["line_id"]), correlation),
        scoring.score_yield,
        scoring.score_yield_many,
        features,
        lambda out: advice.yield_advice(request.order_id, out["yield_fraction"], planned),
        Logged(endpoint, features, ids, started),
    )
    fraction = scored.output["yield_fraction"]
    return YieldResponse(
        **_answer(scored, correlation),
        order_id=request.order_id,
        yield_fraction=fraction,
        expected_good_qty=fraction * planned,
        planned_qty=planned,
    )


def consumption(
    runtime: ServingRuntime, request: ConsumptionRequest, endpoint: str, ids: FixedIds | None = None
) -> ConsumptionResponse:
    """A meter's energy for a day: total and quarter-hours, with the interval."""
    started = time.perf_counter()
    rows = runtime.require_context().consumption_features(request.meter_id, request.day)
    day = rows["target_day"].iloc[0].date()
    correlation = request.correlation_id or f"{request.meter_id}@{day.isoformat()}"
    features = {
        "series": request.meter_id,
        "day": day.isoformat(),
        "rows": len(rows),
        **{k: _plain(v) for k, v in rows.iloc[0].items() if k not in ("series", "group", "target_day", "ts")},
    }
    line_id = str(rows["group"].iloc[0]) if "group" in rows else None
    scored = _serve(
        runtime,
        Served("consumption", request.meter_id, line_id, correlation),
        scoring.score_consumption,
        scoring.score_consumption_many,
        rows,
        lambda out: advice.consumption_advice(
            request.meter_id,
            day.isoformat(),
            out["total_kwh"],
            out["lower_kwh"],
            out["upper_kwh"],
            out["peak"],
        ),
        Logged(endpoint, features, ids, started),
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


def outcome(runtime: ServingRuntime, request: OutcomeRequest, key_id: str) -> OutcomeResponse:
    """Record what really happened and count the logged predictions it resolves (idempotent)."""
    runtime.writer.flush()  # so the count of resolved predictions includes those still in flight
    name = model_name(request.model)
    stored, recorded = recs.record_outcome(
        runtime.db_url,
        model_name=name,
        correlation_id=request.correlation_id,
        entity_id=request.entity_id,
        actual=request.actual,
        observed_at=request.observed_at,
        key_id=key_id,
    )
    # one indexed count, not the whole resolved log of the model on every post
    count = recs.predictions_resolved_by(runtime.db_url, name, request.correlation_id)
    return OutcomeResponse(
        model=name, correlation_id=stored.correlation_id, recorded=recorded, predictions=count
    )


def logged_request_ids(db_url: str, request_ids: list[str]) -> set[str]:
    """Those of ``request_ids`` the prediction log holds (one query)."""
    if not request_ids:
        return set()
    column = PredictionLogEntry.__table__.c.request_id  # type: ignore[attr-defined]
    with database.get_engine(db_url).connect() as connection:
        return set(connection.scalars(select(column).where(column.in_(request_ids))))


@dataclass(frozen=True, slots=True)
class Served:
    """What a prediction is about: its model's task, the entity, the entity's line and the correlation id."""

    task: str
    entity_id: str
    line_id: str | None
    correlation_id: str


@dataclass(frozen=True, slots=True)
class Logged:
    """How a prediction is logged: endpoint, the features recorded, fixed ids (or None) and its start time."""

    endpoint: str
    features: dict[str, Any]
    ids: FixedIds | None
    started: float


def _serve(
    runtime: ServingRuntime,
    served: Served,
    score: Callable[[Any, Any], dict[str, Any]],
    score_many: Callable[[Any, list[Any]], list[dict[str, Any]]],
    payload: Any,
    advise: Callable[[dict[str, Any]], advice.Advice],
    logged: Logged,
) -> Scored:
    """Route, score ``payload`` with the chosen arm, advise, and queue the prediction for the log."""
    scored = _with_ids(
        runtime.answer(served.task, served.entity_id, lambda forecaster: score(forecaster, payload), advise),
        logged.ids,
    )
    runtime.log(
        scored,
        endpoint=logged.endpoint,
        entity_id=served.entity_id,
        line_id=served.line_id,
        correlation_id=served.correlation_id,
        features=logged.features,
        score_many=score_many,
        payload=payload,
        started=logged.started,
    )
    return scored


def _with_ids(scored: Scored, ids: FixedIds | None) -> Scored:
    if ids is None:
        return scored
    return dataclasses.replace(scored, request_id=ids.request_id, recommendation_id=ids.recommendation_id)


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
