"""Ingest throughput on a simulated year of one plant: rows/s per stage, and the ratio to plain pandas.

Stages timed on the same extract: adapter (vendor files -> landed frames), anonymize, validate (GX + rules).
The baseline reads the same files with plain pandas (json + DataFrame, read_csv) and writes Parquet.

    uv run python benchmarks/ingest.py [--days 365] [--lines 2] [--machines-per-line 6]

Ends with one JSON line of its figures.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from data_contracts.anonymization import anonymize_table
from data_contracts.contract import PersonalData, load_contracts
from data_contracts.validation import validate
from mesops.settings import get_settings
from pipelines.adapters.batch import read_batch
from pipelines.simulator import SimulationConfig, emit_extracts, simulate
from pipelines.stages import timestamp_format_for


def plain_pandas(batch_dir: Path, out_dir: Path) -> tuple[float, int]:
    """Read every extract file with plain pandas and write it to Parquet: the baseline."""
    started = time.perf_counter()
    rows = 0
    pages: dict[str, list[dict]] = {}
    for path in sorted(batch_dir.glob("*.json")):
        body = json.loads(path.read_text())
        records = body["value"] if isinstance(body, dict) and "value" in body else body.get("data", body)
        pages.setdefault(path.stem.split("-")[0], []).extend(records)
    frames = {name: pd.DataFrame(records) for name, records in pages.items()}
    frames.update({p.stem: pd.read_csv(p) for p in sorted(batch_dir.glob("*.csv"))})
    for name, frame in frames.items():
        frame.to_parquet(out_dir / f"{name}.parquet", index=False)
        rows += len(frame)
    return time.perf_counter() - started, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--lines", type=int, default=2)
    parser.add_argument("--machines-per-line", type=int, default=6)
    parser.add_argument("--mes", default="opcenter", choices=["opcenter", "plex"])
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mesops-bench-"))
    settings = get_settings(home=work / "home", pseudonym_key="benchmark-key-0123456789")
    contracts = load_contracts(settings.resolved_contracts_dir)

    started = time.perf_counter()
    history = simulate(
        SimulationConfig(days=args.days, lines=args.lines, machines_per_line=args.machines_per_line)
    )
    simulate_s = time.perf_counter() - started
    batch_dir = emit_extracts(history, work / "batch", mes=args.mes, batch_id="bench")

    baseline_dir = work / "baseline"
    baseline_dir.mkdir()
    baseline_s, baseline_rows = plain_pandas(batch_dir, baseline_dir)

    started = time.perf_counter()
    landed = read_batch(batch_dir, contracts)
    adapter_s = time.perf_counter() - started
    roster = landed.pop("employees")

    per_table: dict[str, dict[str, float]] = {}
    for name, frame in landed.items():
        contract = contracts[name]
        t0 = time.perf_counter()
        anonymized, _ = anonymize_table(
            frame,
            contract,
            roster,
            key=settings.pseudonym_secret,
            policy_version="bench",
            batch_id="bench",
            cache_dir=settings.home / "cache",
        )
        t1 = time.perf_counter()
        validate(
            anonymized,
            contract,
            references={"machines.machine_id": set(landed["machines"]["machine_id"])},
            timestamp_format=timestamp_format_for(contract),
        )
        t2 = time.perf_counter()
        free_text = contract.personal_columns(PersonalData.FREE_TEXT)
        texts = int(sum(frame[c].notna().sum() for c in free_text))
        per_table[name] = {
            "rows": len(frame),
            "anonymize_s": t1 - t0,
            "validate_s": t2 - t1,
            "texts": texts,
            "free_text": bool(free_text),
        }

    rows = sum(v["rows"] for v in per_table.values())
    anonymize_s = sum(v["anonymize_s"] for v in per_table.values())
    validate_s = sum(v["validate_s"] for v in per_table.values())
    free = [v for v in per_table.values() if v["free_text"]]
    notes_per_s = sum(v["texts"] for v in free) / max(sum(v["anonymize_s"] for v in free), 1e-9)
    structured = [v for v in per_table.values() if not v["free_text"]]
    structured_rows = sum(v["rows"] for v in structured)
    structured_share = structured_rows / rows
    # adapter time is shared across tables: attribute it by row share
    structured_path_s = adapter_s * structured_share + sum(
        v["anonymize_s"] + v["validate_s"] for v in structured
    )
    whole_path_s = adapter_s + anonymize_s + validate_s
    baseline_structured_s = baseline_s * structured_share

    print(
        f"simulated {args.days} days, {args.lines} lines x {args.machines_per_line} machines in {simulate_s:.1f} s"
    )
    print(f"{'table':24} {'rows':>9} {'anonymize r/s':>14} {'validate r/s':>13}")
    for name, v in sorted(per_table.items()):
        print(
            f"{name:24} {v['rows']:>9} {v['rows'] / max(v['anonymize_s'], 1e-9):>14,.0f} "
            f"{v['rows'] / max(v['validate_s'], 1e-9):>13,.0f}"
        )
    figures = {
        "rows": rows,
        "adapter_rows_per_s": round(rows / adapter_s),
        "anonymize_rows_per_s": round(rows / anonymize_s),
        "validate_rows_per_s": round(rows / validate_s),
        "free_text_notes_per_s": round(notes_per_s),
        "baseline_rows_per_s": round(baseline_rows / baseline_s),
        "structured_path_vs_plain_pandas": round(structured_path_s / baseline_structured_s, 2),
        "whole_path_vs_plain_pandas": round(whole_path_s / baseline_s, 2),
        "targets": {"free_text_notes_per_s": ">= 1000", "structured_path_vs_plain_pandas": "<= 5"},
    }
    print(
        f"adapter {figures['adapter_rows_per_s']:,} rows/s, anonymize {figures['anonymize_rows_per_s']:,} rows/s, "
        f"validate {figures['validate_rows_per_s']:,} rows/s; free text {figures['free_text_notes_per_s']:,} notes/s"
    )
    print(
        f"structured path / plain pandas = {figures['structured_path_vs_plain_pandas']}x; "
        f"whole path / plain pandas = {figures['whole_path_vs_plain_pandas']}x"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
