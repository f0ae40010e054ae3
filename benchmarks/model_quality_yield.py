"""Benchmark: quality of the yield forecaster against the product-mean baseline on simulated plants.

For each seed, simulates a year of a plant (2 lines x 6 machines), builds release-time features, splits the
orders with a known outcome by ``released_at`` (shares of the time span in YieldModelConfig), and
reports test MAE of the yield fraction and of the good quantity (fraction x planned quantity) for the forecaster
and the baseline, their ratio, slices by line and product, and the share of orders whose main lot had history.

Run: .venv/bin/python benchmarks/model_quality_yield.py [--days 365] [--seeds 7,8,9]
The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import time
from statistics import mean

from models.evaluation import EvaluationReport
from models.order_yield import YieldModelConfig, split_rows, train_and_evaluate, training_rows
from pipelines.simulator import SimulationConfig, simulate

DAYS = 365
SEEDS = (7, 8, 9)


def _slices(report: EvaluationReport) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    for s in report.slices:
        out.setdefault(s.dimension, {})[s.value] = {
            "rows": s.rows,
            "mae_fraction": round(s.metrics["mae_fraction"], 4),
            "ratio": round(s.metrics["mae_fraction"] / s.metrics["baseline_mae_fraction"], 3),
        }
    return out


def one_plant(seed: int, days: int) -> dict:
    """Simulate one plant, train and evaluate; the figures of that run."""
    history = simulate(SimulationConfig(seed=seed, days=days, lines=2, machines_per_line=6))
    started = time.perf_counter()
    forecaster, report = train_and_evaluate(history.tables)
    seconds = time.perf_counter() - started
    test = split_rows(training_rows(history.tables), YieldModelConfig()).test
    m = report.metrics
    return {
        "seed": seed,
        "rows": report.rows,
        "split": report.split,
        "mae_fraction": round(m["mae_fraction"], 4),
        "baseline_mae_fraction": round(m["baseline_mae_fraction"], 4),
        "ratio_fraction": round(report.baseline.ratio, 3),
        "mae_units": round(m["mae_units"], 2),
        "baseline_mae_units": round(m["baseline_mae_units"], 2),
        "ratio_units": round(m["mae_units_ratio"], 3),
        "bias_fraction": round(m["bias_fraction"], 4),
        "rounds": forecaster.best_rounds_,
        "main_lot_with_history": round(float((test["main_lot_orders"] > 0).mean()), 3),
        "train_and_evaluate_seconds": round(seconds, 2),
        "slices": _slices(report),
    }


def run(days: int = DAYS, seeds: tuple[int, ...] = SEEDS) -> dict:
    """Figures per seed and their mean ratios, under the key "simulator"."""
    plants = [one_plant(seed, days) for seed in seeds]
    return {
        "simulator": {
            "days": days,
            "target": "yield fraction good_qty / started_qty; units = fraction x planned_qty",
            "baseline": "product-level mean yield of the training period (train + validation)",
            "mean_ratio_fraction": round(mean(p["ratio_fraction"] for p in plants), 3),
            "mean_ratio_units": round(mean(p["ratio_units"] for p in plants), 3),
            "plants": plants,
        }
    }


def main() -> None:
    """Print a readable summary and end with one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=DAYS)
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    args = parser.parse_args()
    figures = run(args.days, tuple(int(s) for s in args.seeds.split(",")))
    sim = figures["simulator"]
    for p in sim["plants"]:
        print(
            f"seed {p['seed']}: test {p['rows']['test']} orders  MAE {p['mae_fraction']:.4f} "
            f"(baseline {p['baseline_mae_fraction']:.4f}, ratio {p['ratio_fraction']:.3f})  "
            f"units {p['mae_units']:.1f} (baseline {p['baseline_mae_units']:.1f}, ratio {p['ratio_units']:.3f})  "
            f"main lot with history {p['main_lot_with_history']:.0%}"
        )
        for dimension, values in p["slices"].items():
            cells = "  ".join(f"{k} {v['ratio']:.2f}" for k, v in values.items())
            print(f"    ratio by {dimension}: {cells}")
    print(f"mean ratio: fraction {sim['mean_ratio_fraction']:.3f}, units {sim['mean_ratio_units']:.3f}")
    print(json.dumps({"benchmark": "model_quality_yield", **figures}))


if __name__ == "__main__":
    main()
