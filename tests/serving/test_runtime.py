"""The runtime's log hook: shadow comparisons are counted, a failed shadow is never counted as agreement."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prometheus_client import REGISTRY

from serving.prediction_log import LoggedPrediction
from serving.runtime import ServingRuntime


def _record(challenger_output: dict[str, Any]) -> LoggedPrediction:
    return LoggedPrediction(
        request_id="r1",
        created_at=datetime.now(UTC),
        endpoint="/v1/failure/risk",
        model_name="mesops-test-runtime",
        phase="shadow",
        entity_id="M-01",
        correlation_id="c1",
        answered_by="champion",
        answered_version="1",
        champion_version="1",
        challenger_version="2",
        features={},
        champion_output={"alarm": False, "probability": 0.1},
        challenger_output=challenger_output,
        status="ok",
        latency_ms=1.0,
    )


def _count(name: str) -> float:
    return REGISTRY.get_sample_value(f"{name}_total", {"model": "mesops-test-runtime"}) or 0.0


def test_failed_shadow_is_an_error_not_an_agreement(settings) -> None:  # type: ignore[no-untyped-def]
    runtime = ServingRuntime(settings)
    before = {
        n: _count(n) for n in ("mesops_shadow_scored", "mesops_shadow_errors", "mesops_shadow_disagreements")
    }
    runtime._on_written(
        [
            _record({"alarm": True, "probability": 0.9}),  # disagrees
            _record({"alarm": False, "probability": 0.2}),  # agrees
            _record({"error": "ValueError: boom"}),  # could not be compared
        ]
    )
    after = {n: _count(n) - before[n] for n in before}
    assert after == {"mesops_shadow_scored": 2, "mesops_shadow_errors": 1, "mesops_shadow_disagreements": 1}
