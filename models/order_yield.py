"""Yield forecaster: the yield fraction (good / started) of a production order, forecast at its release.

Target: the yield *fraction* good_qty / started_qty. Scrap is a per-unit process (each unit passes each step
or not), so the fraction is comparable across order sizes and products; the good quantity in units is the
fraction times the planned quantity, the only quantity known at release (``predict_good_qty``).

Rows: orders with a known outcome (COMPLETED / CLOSED with good and started quantity), split by ``released_at``
(train / validation / test, never random). Baseline: the product's mean yield over the training period.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.evaluation import BaselineComparison, EvaluationReport, SliceMetrics
from models.splits import TimeSplit, split_by_time
from models.yield_features import FEATURES, YieldFeatureConfig, build_yield_features
from models.yield_history import as_float, known_outcomes

log = logging.getLogger(__name__)

TARGET = "yield_fraction"
SLICE_DIMENSIONS = ("line_id", "product_id")
# Domain knowledge as constraints: a lot or line that did worse before, or more wear, vibration or recent
# scrap on the routing's machines, never raises the forecast. Keeps the forecaster's answer to "what if this
# lot were worse" sane where training data is thin.
MONOTONE: dict[str, int] = {
    "product_yield_mean": 1,
    "line_recent_residual": 1,
    "main_lot_effect": 1,
    "lot_effect_min": 1,
    "lot_effect_mean": 1,
    "wear_max": -1,
    "wear_mean": -1,
    "vibration_mean": -1,
    "vibration_max": -1,
    "op_scrap_share_mean": -1,
    "op_scrap_share_max": -1,
}


def default_params(seed: int = 7) -> dict[str, Any]:
    """LightGBM parameters: deterministic, small trees (a few thousand orders a year), one thread.

    One thread, not two: on a few hundred to a few thousand rows OpenMP's overhead dominates, and on a loaded
    two-core machine two threads trained 500 rounds in 18 s against 0.7 s with one.
    """
    return {
        "objective": "l2",
        "learning_rate": 0.03,
        "num_leaves": 7,
        "min_data_in_leaf": 30,
        "feature_fraction": 0.9,
        "lambda_l2": 1.0,
        "seed": seed,
        "deterministic": True,
        "force_col_wise": True,
        "num_threads": 1,
        "verbose": -1,
    }


@dataclass(frozen=True)
class YieldModelConfig:
    """Everything that shapes a yield model: features, LightGBM parameters, rounds and split shares."""

    features: YieldFeatureConfig = field(default_factory=YieldFeatureConfig)
    params: Mapping[str, Any] = field(default_factory=default_params)
    max_rounds: int = 2000
    early_stopping_rounds: int = 100
    monotone: bool = True
    validation_share: float = 0.15
    test_share: float = 0.2


def training_rows(
    tables: Mapping[str, pd.DataFrame], config: YieldFeatureConfig | None = None
) -> pd.DataFrame:
    """Orders with a known outcome: their release-time features, identifiers and the target (one frame)."""
    finished = known_outcomes(tables["production_orders"]).reset_index(drop=True)
    if finished.empty:
        raise ValueError(
            "production_orders: no order with a known outcome (COMPLETED/CLOSED with quantities)"
        )
    features = build_yield_features(tables, finished, config)
    meta = finished[["order_id", "product_id", "line_id", "released_at"]].assign(
        released_at=pd.to_datetime(finished["released_at"]),
        started_qty=as_float(finished["started_qty"]),
        good_qty=as_float(finished["good_qty"]),
        yield_fraction=finished[TARGET].to_numpy(),
    )
    return pd.concat([meta.set_index("order_id"), features], axis=1).reset_index()


class ProductMeanBaseline:
    """Baseline: the product's mean yield in the training period (the plant mean for unseen products)."""

    def fit(self, rows: pd.DataFrame) -> ProductMeanBaseline:
        """Learn product means from rows with ``product_id`` and ``yield_fraction``."""
        self.product_mean_ = rows.groupby("product_id")[TARGET].mean().to_dict()
        self.plant_mean_ = float(rows[TARGET].mean())
        return self

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        """Product mean yield per row."""
        return rows["product_id"].map(self.product_mean_).fillna(self.plant_mean_).to_numpy(dtype="float64")


def _errors(rows: pd.DataFrame, fraction: np.ndarray) -> dict[str, float]:
    """MAE of the fraction and of the good quantity (fraction x planned quantity), bias and RMSE."""
    err = fraction - rows[TARGET].to_numpy()
    units = fraction * rows["planned_qty"].to_numpy() - rows["good_qty"].to_numpy()
    return {
        "mae_fraction": float(np.mean(np.abs(err))),
        "mae_units": float(np.mean(np.abs(units))),
        "rmse_fraction": float(np.sqrt(np.mean(err**2))),
        "bias_fraction": float(np.mean(err)),
    }


class YieldForecaster:
    """LightGBM regression of an order's yield fraction from its release-time features."""

    def __init__(self, config: YieldModelConfig | None = None) -> None:
        self.config = config or YieldModelConfig()
        self.booster_: lgb.Booster | None = None
        self.best_rounds_: int | None = None
        self.fallback_yield_: float = float("nan")

    @property
    def features(self) -> list[str]:
        """The feature columns, in the order the model takes them."""
        return list(FEATURES)

    def _offset(self, features: pd.DataFrame) -> np.ndarray:
        """The product's mean yield as known at release (the plant mean of training when nothing was known)."""
        return features["product_yield_mean"].fillna(self.fallback_yield_).to_numpy(dtype="float64")

    def _dataset(self, rows: pd.DataFrame) -> lgb.Dataset:
        # the trees learn the correction to the product's known mean yield, not the yield itself: with a few
        # hundred orders that anchors the forecast where the evidence for a correction is thin
        return lgb.Dataset(
            rows[self.features], label=rows[TARGET], init_score=self._offset(rows), free_raw_data=False
        )

    def _params(self) -> dict[str, Any]:
        params = dict(self.config.params)
        if self.config.monotone:
            params["monotone_constraints"] = [MONOTONE.get(f, 0) for f in self.features]
            params["monotone_constraints_method"] = "intermediate"
        return params

    def fit(self, train: pd.DataFrame, validation: pd.DataFrame) -> YieldForecaster:
        """Pick the number of rounds on ``validation`` (early stopping), then refit on train + validation."""
        params = self._params()
        self.fallback_yield_ = float(train[TARGET].mean())
        probe = lgb.train(
            params,
            self._dataset(train),
            num_boost_round=self.config.max_rounds,
            valid_sets=[self._dataset(validation)],
            callbacks=[lgb.early_stopping(self.config.early_stopping_rounds, verbose=False)],
        )
        self.best_rounds_ = max(1, probe.best_iteration)
        both = pd.concat([train, validation], ignore_index=True)
        self.booster_ = lgb.train(params, self._dataset(both), num_boost_round=self.best_rounds_)
        log.info("yield model: %d rounds on %d rows", self.best_rounds_, len(both))
        return self

    def predict(self, features: pd.DataFrame) -> pd.Series:
        """Forecast yield fraction per row (clipped to [0, 1]), indexed like ``features``."""
        if self.booster_ is None:
            raise RuntimeError("YieldForecaster: fit before predict")
        missing = [f for f in self.features if f not in features.columns]
        if missing:
            raise ValueError(f"features: columns missing: {', '.join(missing)}")
        raw = self.booster_.predict(features[self.features].astype("float64")) + self._offset(features)
        return pd.Series(np.clip(raw, 0.0, 1.0), index=features.index, name=TARGET)

    def predict_records(self, records: Sequence[Mapping[str, object]]) -> np.ndarray:
        """:meth:`predict` for a few feature dicts, without building a DataFrame (the serving path)."""
        if self.booster_ is None:
            raise RuntimeError("YieldForecaster: fit before predict")
        matrix = np.array(
            [[np.nan if (v := r.get(f)) is None else float(v) for f in self.features] for r in records],  # type: ignore[arg-type]
            dtype="float64",
        ).reshape(len(records), len(self.features))
        offset = matrix[:, self.features.index("product_yield_mean")]
        offset = np.where(np.isnan(offset), self.fallback_yield_, offset)
        return np.clip(self.booster_.predict(matrix, num_threads=1) + offset, 0.0, 1.0)

    def predict_good_qty(self, features: pd.DataFrame) -> pd.Series:
        """Forecast good quantity: yield fraction x planned quantity."""
        return (self.predict(features) * features["planned_qty"]).rename("good_qty")

    def evaluate(
        self,
        test: pd.DataFrame,
        baseline: ProductMeanBaseline,
        split: dict[str, str],
        rows: dict[str, int],
        dataset: str = "simulator",
    ) -> EvaluationReport:
        """Test metrics against the product-mean baseline, with slices by line and product."""
        model = self.predict(test).to_numpy()
        base = baseline.predict(test)
        metrics = _errors(test, model)
        base_metrics = _errors(test, base)
        metrics |= {f"baseline_{k}": v for k, v in base_metrics.items()}
        metrics["mae_units_ratio"] = metrics["mae_units"] / base_metrics["mae_units"]
        return EvaluationReport(
            task="yield",
            dataset=dataset,
            split=split,
            rows=rows,
            features=self.features,
            metrics=metrics,
            baseline=BaselineComparison(
                metric="mae_fraction",
                higher_is_better=False,
                model_value=metrics["mae_fraction"],
                baseline_name="product-level mean yield of the training period",
                baseline_value=base_metrics["mae_fraction"],
            ),
            slices=_slices(test, model, base),
        )


def _slices(test: pd.DataFrame, model: np.ndarray, base: np.ndarray) -> list[SliceMetrics]:
    """MAE of model and baseline per line and per product."""
    out = []
    for dimension in SLICE_DIMENSIONS:
        for value, idx in test.groupby(dimension).indices.items():
            part = test.iloc[idx]
            m, b = _errors(part, model[idx]), _errors(part, base[idx])
            out.append(
                SliceMetrics(
                    dimension=dimension.removesuffix("_id"),
                    value=str(value),
                    rows=len(idx),
                    metrics={
                        "mae_fraction": m["mae_fraction"],
                        "mae_units": m["mae_units"],
                        "baseline_mae_fraction": b["mae_fraction"],
                        "baseline_mae_units": b["mae_units"],
                    },
                )
            )
    return out


def split_rows(rows: pd.DataFrame, config: YieldModelConfig) -> TimeSplit:
    """Train / validation / test by release time."""
    return split_by_time(rows, "released_at", config.validation_share, config.test_share)


def train_and_evaluate(
    tables: Mapping[str, pd.DataFrame],
    config: YieldModelConfig | None = None,
    dataset: str = "simulator",
    *,
    split: TimeSplit | None = None,
) -> tuple[YieldForecaster, EvaluationReport]:
    """Build rows, split by release time, fit baseline and forecaster on the past, report on the test slice.

    ``split``: ``split_rows(training_rows(tables, config.features), config)`` already made (the caller keeps
    its training rows, e.g. for lineage).
    """
    config = config or YieldModelConfig()
    split = split or split_rows(training_rows(tables, config.features), config)
    history = pd.concat([split.train, split.validation], ignore_index=True)
    baseline = ProductMeanBaseline().fit(history)
    forecaster = YieldForecaster(config).fit(split.train, split.validation)
    report = forecaster.evaluate(
        split.test,
        baseline,
        split=split.window("released_at") | {"scheme": "time-ordered by released_at"},
        rows={"train": len(split.train), "validation": len(split.validation), "test": len(split.test)},
        dataset=dataset,
    )
    return forecaster, report
