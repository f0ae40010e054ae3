"""Benchmark: simulate a year of one plant (2 lines x 6 machines) and print seconds and rows per table.

Run: .venv/bin/python benchmarks/simulate.py [--days 365] [--seed 7]
The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import time

from pipelines.simulator import SimulationConfig, simulate


def main() -> None:
    """Time one simulation and report rows per table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    config = SimulationConfig(days=args.days, seed=args.seed, lines=2, machines_per_line=6)
    started = time.perf_counter()
    history = simulate(config)
    seconds = time.perf_counter() - started
    rows = {name: len(frame) for name, frame in history.tables.items()}
    for name, count in rows.items():
        print(f"{name:22s} {count:>10,d} rows")
    print(
        f"simulated {args.days} days, {config.lines * config.machines_per_line} machines in {seconds:.2f} s"
    )
    print(
        json.dumps(
            {
                "benchmark": "simulate",
                "days": args.days,
                "machines": config.lines * config.machines_per_line,
                "seconds": round(seconds, 3),
                "rows": rows,
                "failures": len(history.failures),
                "planted_entities": len(history.personal_truth),
            }
        )
    )


if __name__ == "__main__":
    main()
