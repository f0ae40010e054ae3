"""The evaluation report every forecaster produces: metrics, the baseline it must beat, slices, calibration.

A plain, JSON-ready value object: training logs it, the registry refuses versions that do not beat their
baseline, and governance reports show it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class BaselineComparison(BaseModel):
    """The forecaster's headline metric against a plain baseline's on the same test rows."""

    model_config = ConfigDict(frozen=True)

    metric: str = Field(description="The headline metric, e.g. 'pr_auc' or 'mae'.")
    higher_is_better: bool
    model_value: float
    baseline_name: str = Field(
        description="What the baseline is, e.g. 'seasonal naive (same slot last week)'."
    )
    baseline_value: float

    @property
    def ratio(self) -> float:
        """model / baseline (for errors lower is better; for scores higher is better)."""
        return self.model_value / self.baseline_value if self.baseline_value else float("inf")

    @property
    def beats_baseline(self) -> bool:
        if self.higher_is_better:
            return self.model_value > self.baseline_value
        return self.model_value < self.baseline_value


class SliceMetrics(BaseModel):
    """The headline metric on one slice of the test rows (a line, machine or product)."""

    model_config = ConfigDict(frozen=True)

    dimension: str
    value: str
    rows: int
    metrics: dict[str, float]


class EvaluationReport(BaseModel):
    """What a training run measured on held-out, later-in-time data."""

    model_config = ConfigDict(frozen=True)

    task: Literal["failure", "yield", "consumption"]
    dataset: str = Field(
        description="Where the rows came from, e.g. 'simulator', 'ai4i2020', 'steel_energy'."
    )
    split: dict[str, str] = Field(
        description="How the rows were split (time cut points, or the scheme used)."
    )
    rows: dict[str, int] = Field(description="Rows in train, validation and test.")
    features: list[str]
    metrics: dict[str, float] = Field(description="Test metrics of the forecaster.")
    baseline: BaselineComparison
    slices: list[SliceMetrics] = []
    calibration: dict[str, float | list[float]] = Field(
        default_factory=dict,
        description="Reliability (failure: Brier, calibration bins) or interval coverage (consumption).",
    )
    threshold: float | None = Field(
        default=None, description="Decision threshold, chosen on validation data."
    )
