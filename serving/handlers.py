"""The work behind each prediction: features, routing by phase, recommendation, prediction log.

One code path for every way a prediction is asked for: the HTTP service (serving/service.py) and the MES event
bridge (serving/bridge.py) both call these functions with a :class:`~serving.runtime.ServingRuntime`.

A caller that must know its record is stored before it acts (the bridge acknowledges an event only then) passes
:class:`FixedIds` (ids derived from the event, so a redelivered event maps onto the same rows) and then calls
:func:`wait_committed`.
"""

from __future__ import annotations

import dataclasses
import time
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

    def score(forecaster: Any) -> dict[str, Any]:
        return scoring.score_failure(forecaster, features)

    scored = _with_ids(
        runtime.answer(
            "failure",
            request.machine_id,
            score,
            lambda out: advice.failure_advice(
                request.machine_id, out["probability"], out["threshold"], scoring.HORIZON_HOURS
            ),
        ),
        ids,
    )
    runtime.log(
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

    def score(forecaster: Any) -> dict[str, Any]:
        return scoring.score_yield(forecaster, features)

    scored = _with_ids(
        runtime.answer(
            "yield",
            request.order_id,
            score,
            lambda out: advice.yield_advice(request.order_id, out["yield_fraction"], planned),
        ),
        ids,
    )
    runtime.log(
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


def consumption(
    runtime: ServingRuntime, request: ConsumptionRequest, endpoint: str, ids: FixedIds | None = None
) -> ConsumptionResponse:
    """A meter's energy for a day: total and quarter-hours, with the interval."""
    started = time.perf_counter()
    rows = runtime.require_context().consumption_features(request.meter_id, request.day)
    day = rows["target_day"].iloc[0].date()
    correlation = request.correlation_id or f"{request.meter_id}@{day.isoformat()}"

    def score(forecaster: Any) -> dict[str, Any]:
        return scoring.score_consumption(forecaster, rows)

    scored = _with_ids(
        runtime.answer(
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
        ),
        ids,
    )
    features = {
        "series": request.meter_id,
        "day": day.isoformat(),
        "rows": len(rows),
        **{k: _plain(v) for k, v in rows.iloc[0].items() if k not in ("series", "group", "target_day", "ts")},
    }
    runtime.log(
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


def is_logged(db_url: str, request_id: str) -> bool:
    """Whether the prediction log holds ``request_id`` (its recommendation is committed in the same transaction)."""
    column = PredictionLogEntry.__table__.c.request_id  # type: ignore[attr-defined]
    with database.get_engine(db_url).connect() as connection:
        return connection.scalar(select(column).where(column == request_id)) is not None


def wait_committed(runtime: ServingRuntime, request_id: str, timeout_s: float = 10.0) -> None:
    """Block until the prediction ``request_id`` and its recommendation are committed.

    Raises NotCommittedError when the writer rejected the record, TimeoutError when it is still waiting
    (the database is away): in both cases the caller must not acknowledge what it answered.
    """
    runtime.writer.flush(timeout_s)
    if not is_logged(runtime.db_url, request_id):
        raise NotCommittedError(f"prediction {request_id} was not stored by the prediction log writer")


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
