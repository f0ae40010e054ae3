"""Benchmark: failure forecaster quality on AI4I 2020 and on a simulated plant year, against its baselines.

Run: .venv/bin/python benchmarks/model_quality_failure.py [--days 365] [--seed 7]
The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from data_contracts.contract import load_contracts
from models.evaluation import EvaluationReport
from models.failure import train_failure_forecaster
from models.failure_ai4i import evaluate_ai4i
from pipelines.simulator import SimulationConfig, simulate

REPO_ROOT = Path(__file__).resolve().parents[1]
AI4I_CSV = REPO_ROOT.parent / "shared" / "datasets" / "ai4i2020.csv"
PUBLISHED = {"roc_auc": 0.975, "pr_auc": 0.89, "pr_auc_std": 0.02}


def _round(value: object) -> object:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, list):
        return [_round(v) for v in value]
    return value


def _figures(report: EvaluationReport, seconds: float) -> dict[str, object]:
    """The headline figures of a report, rounded."""
    keep = (
        "pr_auc",
        "pr_auc_std",
        "roc_auc",
        "roc_auc_std",
        "brier",
        "precision_at_threshold",
        "recall_at_threshold",
        "f1_at_threshold",
        "alarm_rate",
        "test_prevalence",
        "baseline_prevalence_pr_auc",
        "baseline_tool_wear_pr_auc",
        "baseline_tool_wear_roc_auc",
    )
    return {
        "split": report.split,
        "rows": report.rows,
        "metrics": {k: _round(report.metrics[k]) for k in keep if k in report.metrics},
        "baseline": {
            "name": report.baseline.baseline_name,
            "pr_auc": _round(report.baseline.baseline_value),
            "ratio": _round(report.baseline.ratio),
            "beats": report.baseline.beats_baseline,
        },
        "threshold": _round(report.threshold),
        "calibration": {k: _round(v) for k, v in report.calibration.items()},
        "slices": [
            {"dimension": s.dimension, "value": s.value, "rows": s.rows}
            | {
                k: _round(s.metrics[k])
                for k in ("failures", "pr_auc", "roc_auc", "recall_at_threshold", "brier")
                if k in s.metrics
            }
            for s in report.slices
        ],
        "seconds": round(seconds, 2),
    }


def ai4i_figures() -> dict[str, object]:
    """Five stratified 80/20 splits of AI4I 2020 (seeds 0-4)."""
    contract = load_contracts(REPO_ROOT / "data_contracts" / "contracts")["ai4i_process_steps"]
    steps = pd.read_csv(AI4I_CSV).rename(columns=contract.sources["file"].fields)
    started = time.perf_counter()
    report = evaluate_ai4i(steps)
    return _figures(report, time.perf_counter() - started) | {"published": PUBLISHED}


def simulator_figures(days: int = 365, seed: int = 7) -> dict[str, object]:
    """A simulated plant (2 lines x 6 machines), time-ordered 70/15/15 split."""
    tables = simulate(SimulationConfig(seed=seed, days=days, lines=2, machines_per_line=6)).tables
    started = time.perf_counter()
    _, report = train_failure_forecaster(tables)
    return _figures(report, time.perf_counter() - started) | {"days": days, "seed": seed}


def run(days: int = 365, seed: int = 7) -> dict:
    """Failure forecaster figures: ``{"ai4i": {...}, "simulator": {...}}``."""
    return {"ai4i": ai4i_figures(), "simulator": simulator_figures(days, seed)}


def _summary(name: str, figures: dict) -> None:
    m, b = figures["metrics"], figures["baseline"]
    spread = f" +/- {m['pr_auc_std']:.3f}" if "pr_auc_std" in m else ""
    print(f"[{name}] rows {figures['rows']}  threshold {figures['threshold']:.3f}")
    print(
        f"  PR-AUC {m['pr_auc']:.3f}{spread}  ROC-AUC {m['roc_auc']:.3f}  Brier {m['brier']:.4f}  "
        f"ECE {figures['calibration']['expected_calibration_error']:.4f}"
    )
    print(
        f"  at threshold: precision {m['precision_at_threshold']:.3f}  recall {m['recall_at_threshold']:.3f}  "
        f"F1 {m['f1_at_threshold']:.3f}"
    )
    print(
        f"  baselines: prevalence PR-AUC {m['baseline_prevalence_pr_auc']:.3f}, tool-wear rule PR-AUC "
        f"{m['baseline_tool_wear_pr_auc']:.3f} -> model / better baseline = {b['ratio']:.2f}x"
    )
    for s in figures["slices"]:
        if s["dimension"] in ("line_id", "product_type"):
            print(
                f"  slice {s['dimension']}={s['value']}: rows {s['rows']}, PR-AUC {s.get('pr_auc', float('nan')):.3f}"
            )


def main() -> None:
    """Print a readable summary and one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    figures = run(args.days, args.seed)
    _summary("ai4i2020", figures["ai4i"])
    print(
        f"  published quick LightGBM: ROC-AUC {PUBLISHED['roc_auc']}, PR-AUC {PUBLISHED['pr_auc']} +/- 0.02"
    )
    _summary("simulator", figures["simulator"])
    print(json.dumps({"benchmark": "model_quality_failure", **figures}))


if __name__ == "__main__":
    main()
