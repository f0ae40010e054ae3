"""Prometheus metrics of the service (served at /metrics beside BentoML's request counters and latencies)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PREDICTIONS = Counter(
    "mesops_predictions_total",
    "Predictions answered, by model, answering arm and phase.",
    ["model", "answered_by", "phase"],
)
PREDICTION_LATENCY = Histogram(
    "mesops_prediction_latency_seconds",
    "Time to answer a prediction inside the service (feature lookup, routing, scoring, recommendation).",
    ["model"],
    buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
ERRORS = Counter(
    "mesops_errors_total", "Requests refused or failed, by endpoint and error code.", ["endpoint", "error"]
)
SHADOW_SCORED = Counter(
    "mesops_shadow_scored_total", "Requests where the arm that did not answer was scored.", ["model"]
)
SHADOW_ERRORS = Counter(
    "mesops_shadow_errors_total",
    "Requests where scoring the arm that did not answer failed (no comparison was made).",
    ["model"],
)
SHADOW_DISAGREEMENTS = Counter(
    "mesops_shadow_disagreements_total",
    "Requests where champion and challenger would have made a different recommendation class.",
    ["model"],
)
PENDING_RECOMMENDATIONS = Gauge(
    "mesops_pending_recommendations",
    "Recommendations waiting for a planner (PENDING_APPROVAL), by model.",
    ["model"],
    multiprocess_mode="max",
)
LOG_PENDING = Gauge(
    "mesops_prediction_log_pending", "Prediction log rows waiting to be written.", multiprocess_mode="max"
)
MODEL_LOADED = Gauge(
    "mesops_model_loaded",
    "1 for each model version loaded, by model, alias and version.",
    ["model", "alias", "version"],
    multiprocess_mode="max",
)
