"""Throughput of contract validation against a plain pandas read + Parquet write of the same rows.

Generates text frames shaped like landed tables (sensor_readings ~1M rows, production_orders ~100k rows, with
~0.2% planted defects), then times:

- baseline: ``pd.read_csv(dtype=str)`` of the same rows as CSV + ``to_parquet``;
- validate (cold): the first call for a contract, which builds and caches its GX objects;
- validate (warm): a second call on the same frame (what every later batch pays).

Prints one line per table and ends with one JSON line. Run:
    .venv/bin/python benchmarks/validate.py [--sensor-rows N] [--order-rows N]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from data_contracts.contract import Contract, load_contracts
from data_contracts.landed import ISSUES, LANDING_ROW, SOURCE
from data_contracts.validation import validate

CONTRACTS = Path(__file__).resolve().parent.parent / "data_contracts" / "contracts"
MACHINES = [f"M-{i:02d}" for i in range(1, 41)]


def numbers_text(rng: np.random.Generator, low: float, high: float, rows: int) -> np.ndarray:
    """Uniform values rendered as text with two decimals, as a historian export would write them."""
    return np.char.mod("%.2f", rng.uniform(low, high, rows)).astype(object)


def plant(frame: pd.DataFrame, rng: np.random.Generator, column: str, value: str, share: float) -> None:
    """Overwrite a random share of one column with a defect value."""
    hit = rng.random(len(frame)) < share
    frame.loc[hit, column] = value


def with_bookkeeping(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Add the landed bookkeeping columns."""
    frame[LANDING_ROW] = np.arange(len(frame), dtype=np.int64)
    frame[SOURCE] = source
    frame[ISSUES] = None
    return frame


def sensor_frame(rows: int, seed: int = 7) -> pd.DataFrame:
    """sensor_readings-like landed frame: one reading per machine every 30 s, ~0.2% defects."""
    rng = np.random.default_rng(seed)
    per_machine = -(-rows // len(MACHINES))
    times = pd.date_range("2025-03-01", periods=per_machine, freq="30s").strftime("%Y-%m-%dT%H:%M:%S")
    frame = pd.DataFrame(
        {
            "machine_id": np.repeat(np.array(MACHINES, dtype=object), per_machine)[:rows],
            "ts": np.tile(np.asarray(times, dtype=object), len(MACHINES))[:rows],
            "air_temp_k": numbers_text(rng, 295, 304, rows),
            "process_temp_k": numbers_text(rng, 305, 314, rows),
            "speed_rpm": numbers_text(rng, 1200, 2800, rows),
            "torque_nm": numbers_text(rng, 5, 75, rows),
            "tool_wear_min": numbers_text(rng, 0, 250, rows),
            "vibration_mm_s": numbers_text(rng, 0.5, 12, rows),
        }
    )
    plant(frame, rng, "torque_nm", "180.00", 0.0005)
    plant(frame, rng, "speed_rpm", "n/a", 0.0005)
    plant(frame, rng, "machine_id", "M-99", 0.0005)
    plant(frame, rng, "air_temp_k", "399.00", 0.0005)
    return with_bookkeeping(frame, "file:sensor_readings.csv")


def orders_frame(rows: int, seed: int = 11) -> pd.DataFrame:
    """production_orders-like landed frame with nullable quantities, three timestamps, ~0.2% defects."""
    rng = np.random.default_rng(seed)
    released = pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 90 * 86400, rows), unit="s")
    start = released + pd.to_timedelta(rng.integers(0, 8 * 3600, rows), unit="s")
    end = start + pd.to_timedelta(rng.integers(600, 12 * 3600, rows), unit="s")
    planned = rng.integers(10, 2000, rows)
    scrap = rng.integers(0, 10, rows)
    fmt = "%Y-%m-%dT%H:%M:%S"
    frame = pd.DataFrame(
        {
            "order_id": np.char.mod("PO-%07d", np.arange(rows)).astype(object),
            "product_id": np.char.mod("P-%03d", rng.integers(101, 160, rows)).astype(object),
            "line_id": np.char.mod("L%d", rng.integers(1, 6, rows)).astype(object),
            "planned_qty": planned.astype(str).astype(object),
            "started_qty": planned.astype(str).astype(object),
            "good_qty": (planned - scrap).astype(str).astype(object),
            "scrap_qty": scrap.astype(str).astype(object),
            "status": rng.choice(
                np.array(["RELEASED", "IN_PROGRESS", "COMPLETED", "CLOSED"], dtype=object), rows
            ),
            "shift": rng.choice(np.array(["A", "B", "C"], dtype=object), rows),
            "released_at": np.asarray(released.strftime(fmt), dtype=object),
            "actual_start": np.asarray(start.strftime(fmt), dtype=object),
            "actual_end": np.asarray(end.strftime(fmt), dtype=object),
            "planner": np.char.mod("PSN-%06x", rng.integers(0, 2**24, rows)).astype(object),
        }
    )
    plant(frame, rng, "good_qty", "99999", 0.0005)
    plant(frame, rng, "status", "DONE", 0.0005)
    plant(frame, rng, "planned_qty", "12.5", 0.0005)
    plant(frame, rng, "order_id", "PO-0000001", 0.0005)
    return with_bookkeeping(frame, "file:production_orders.csv")


def baseline_seconds(frame: pd.DataFrame, folder: Path) -> float:
    """Time a plain pandas read_csv(dtype=str) + to_parquet of the same rows (the CSV is written untimed)."""
    csv = folder / "rows.csv"
    frame.drop(columns=[ISSUES]).to_csv(csv, index=False)
    start = time.perf_counter()
    plain = pd.read_csv(csv, dtype=str)
    plain.to_parquet(folder / "rows.parquet")
    return time.perf_counter() - start


def measure(name: str, frame: pd.DataFrame, contract: Contract, references: dict[str, set[str]]) -> dict:
    """Baseline and validate timings for one table."""
    with tempfile.TemporaryDirectory() as folder:
        baseline = baseline_seconds(frame, Path(folder))
    start = time.perf_counter()
    validate(frame, contract, references=references)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    result = validate(frame, contract, references=references)
    warm = time.perf_counter() - start
    figures = {
        "table": name,
        "rows": len(frame),
        "baseline_s": round(baseline, 3),
        "validate_cold_s": round(cold, 3),
        "validate_warm_s": round(warm, 3),
        "rows_per_s": round(len(frame) / warm),
        "ratio_to_baseline": round(warm / baseline, 2),
        "quarantined": result.quarantined_count,
    }
    print(
        f"{name}: {len(frame):,} rows  baseline {baseline:.2f}s  validate {warm:.2f}s warm ({cold:.2f}s cold)  "
        f"{figures['rows_per_s']:,} rows/s  ratio {figures['ratio_to_baseline']}x  "
        f"quarantined {result.quarantined_count:,}"
    )
    return figures


def main() -> None:
    """Generate both frames, measure, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensor-rows", type=int, default=1_000_000)
    parser.add_argument("--order-rows", type=int, default=100_000)
    args = parser.parse_args()
    contracts = load_contracts(CONTRACTS)
    start = time.perf_counter()
    import great_expectations  # noqa: F401  (imported here so its import time is reported, not hidden)

    gx_import = time.perf_counter() - start
    print(f"great_expectations import: {gx_import:.1f}s (once per process)")
    references = {"machines.machine_id": set(MACHINES)}
    results = [
        measure("sensor_readings", sensor_frame(args.sensor_rows), contracts["sensor_readings"], references),
        measure("production_orders", orders_frame(args.order_rows), contracts["production_orders"], {}),
    ]
    print(json.dumps({"benchmark": "validate", "gx_import_s": round(gx_import, 1), "tables": results}))


if __name__ == "__main__":
    main()
