"""Day-ahead energy forecaster quality: MAE against the seasonal naive, 80 % interval coverage, slices.

Steel plant (UCI steel_industry_energy.csv, 2018): train Jan-Aug, conformal calibration Sep-Oct, test Nov-Dec
(target: MAE <= 0.75 x seasonal naive, coverage of the 10-90 % interval in 78-82 %). Simulator: energy_readings
of a seeded plant, one model across the line meters, the last quarter of the days as test.

Prints a readable summary and ends with one JSON line. Run:
    .venv/bin/python benchmarks/model_quality_consumption.py
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from data_contracts.contract import load_contracts
from models.consumption import ConsumptionConfig, config_summary, train_and_evaluate
from models.consumption_features import ENERGY_READINGS, STEEL_ENERGY, steel_readings
from models.evaluation import EvaluationReport
from pipelines.simulator import SimulationConfig, simulate

ROOT = Path(__file__).resolve().parent.parent
STEEL_CSV = ROOT.parent / "shared" / "datasets" / "steel_industry_energy.csv"
STEEL_TEST_START = pd.Timestamp("2018-11-01")
TARGET_RATIO = 0.75
TARGET_COVERAGE = (0.78, 0.82)


def load_steel_energy(path: Path = STEEL_CSV) -> pd.DataFrame:
    """The steel CSV as the curated steel_energy table: columns renamed by the contract's file mapping."""
    mapping = load_contracts(ROOT / "data_contracts" / "contracts")["steel_energy"].sources["file"]
    frame = pd.read_csv(path).rename(columns=mapping.fields)
    frame["ts"] = pd.to_datetime(frame["ts"], format=mapping.timestamp_format)
    return frame


def figures(report: EvaluationReport) -> dict[str, object]:
    """The report's headline figures, its split and slices, flattened for JSON."""
    return {
        "metrics": {k: round(v, 4) for k, v in report.metrics.items()},
        "meets_ratio_target": report.metrics["mae_ratio"] <= TARGET_RATIO,
        "meets_coverage_target": TARGET_COVERAGE[0] <= report.metrics["coverage"] <= TARGET_COVERAGE[1],
        "rows": report.rows,
        "split": report.split,
        "calibration": {k: round(v, 4) if isinstance(v, float) else v for k, v in report.calibration.items()},
        "slices": [
            {
                "dimension": s.dimension,
                "value": s.value,
                "rows": s.rows,
                **{
                    k: round(s.metrics[k], 4)
                    for k in ("mae", "baseline_mae", "mae_ratio", "coverage", "mean_width")
                },
            }
            for s in report.slices
        ],
    }


def run(simulator_days: int = 120, simulator_lines: int = 3, seed: int = 11) -> dict:
    """Train and evaluate on the steel plant and on the simulator; return the figures of both."""
    config = ConsumptionConfig()
    _, steel = train_and_evaluate(
        steel_readings(load_steel_energy()), STEEL_ENERGY, "steel_energy", STEEL_TEST_START, config
    )
    history = simulate(
        SimulationConfig(seed=seed, days=simulator_days, lines=simulator_lines, machines_per_line=4)
    )
    _, sim = train_and_evaluate(
        history.tables["energy_readings"], ENERGY_READINGS, "simulator", None, config, test_share=0.25
    )
    return {
        "steel": figures(steel),
        "simulator": {
            **figures(sim),
            "simulation": {"seed": seed, "days": simulator_days, "lines": simulator_lines},
        },
        "config": config_summary(config),
    }


def main() -> None:
    """Print the summary and one JSON line."""
    result = run()
    for name in ("steel", "simulator"):
        part = result[name]
        m = part["metrics"]
        print(
            f"{name:9s} MAE {m['mae']:.3f} vs seasonal naive {m['baseline_mae']:.3f} (ratio {m['mae_ratio']:.3f},"
            f" target <= {TARGET_RATIO}); 80 % interval coverage {m['coverage']:.3f}, mean width {m['mean_width']:.2f}"
            f"; test {part['split']['test_start'][:10]}..{part['split']['test_end'][:10]}, {part['rows']}"
        )
        for s in part["slices"]:
            print(
                f"    {s['dimension']:9s} {s['value']:10s} rows {s['rows']:5d}  MAE {s['mae']:.3f}"
                f"  ratio {s['mae_ratio']:.3f}  coverage {s['coverage']:.3f}  width {s['mean_width']:.2f}"
            )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
