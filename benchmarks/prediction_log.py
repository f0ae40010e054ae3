"""Cost of the prediction log on the request path, and rows/s its writer thread stores.

Times, on a fresh SQLite platform database (or ``--database-url``, an empty database to upgrade), with the
prediction_log_* settings defaults:

- build: constructing one ``LoggedPrediction`` (the handler does it on the request path);
- submit: one ``submit()`` call while the writer thread runs (mean, p50, p99, max of single calls: the tail
  is the request thread waiting for the GIL the writer holds);
- end to end: rows/s from the first submit to ``flush()`` returning, the writer running alongside;
- writer alone: the same records queued before ``start()``, rows/s until ``flush()`` returns.

One record in ten carries a recommendation (a second row in the same transaction). Run:
    .venv/bin/python benchmarks/prediction_log.py [--records 50000] [--database-url URL]

Ends with one JSON line of its figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from mesops import database
from mesops.settings import Settings, get_settings
from serving.prediction_log import LoggedPrediction, LoggedRecommendation, PredictionLogWriter


def make_record(n: int, run: str) -> LoggedPrediction:
    """A failure prediction as the service logs it; every tenth one made a recommendation."""
    machine = f"M-{n % 40:02d}"
    now = datetime.now(UTC)
    recommendation = None
    if n % 10 == 0:
        recommendation = LoggedRecommendation(
            recommendation_id=f"{run}-rec-{n}",
            model_name="mesops-failure",
            model_version="3",
            phase="approval",
            entity_id=machine,
            line_id="L1",
            correlation_id=f"{machine}@{n}",
            action_class="inspect",
            text="Inspect the spindle bearing within 24 h",
            details={"probability": 0.81, "horizon_h": 24},
            status="PENDING_APPROVAL",
            created_at=now,
        )
    return LoggedPrediction(
        request_id=f"{run}-{n}",
        created_at=now,
        endpoint="predict_failure",
        model_name="mesops-failure",
        phase="approval",
        entity_id=machine,
        correlation_id=f"{machine}@{n}",
        answered_by="challenger",
        answered_version="3",
        champion_version="2",
        challenger_version="3",
        features={
            "air_temp_k": 298.1,
            "process_temp_k": 308.6,
            "rotational_speed_rpm": 1551.0,
            "torque_nm": 42.8,
            "tool_wear_min": float(n % 250),
            "product_type": "M",
            "vibration_rms": None,
        },
        champion_output={"probability": 0.12},
        challenger_output={"probability": 0.81},
        recommendation=recommendation,
        status="ok",
        latency_ms=1.7,
    )


def writer_for(settings: Settings, url: str, records: int) -> PredictionLogWriter:
    """A writer with the settings' batch and interval, and room for every record of the run."""
    return PredictionLogWriter(
        url,
        batch_rows=settings.prediction_log_batch_rows,
        flush_interval_s=settings.prediction_log_flush_s,
        max_pending=records + 1,
    )


def time_build(records: int) -> tuple[list[LoggedPrediction], float]:
    """The records of one run and the µs one construction costs."""
    started = time.perf_counter()
    built = [make_record(n, "build") for n in range(records)]
    return built, (time.perf_counter() - started) / records * 1e6


def time_submit(settings: Settings, url: str, records: int) -> tuple[list[float], float]:
    """µs of each submit() with the writer running, and end-to-end rows/s until flush() returns."""
    batch = [make_record(n, "submit") for n in range(records)]
    writer = writer_for(settings, url, records)
    writer.start()
    calls: list[float] = []
    clock = time.perf_counter_ns
    started = time.perf_counter()
    for record in batch:
        before = clock()
        writer.submit(record)
        calls.append((clock() - before) / 1000)
    writer.flush(timeout_s=600)
    elapsed = time.perf_counter() - started
    writer.close()
    return calls, records / elapsed


def time_writer(settings: Settings, url: str, records: int) -> float:
    """rows/s of the writer thread alone: everything queued before start(), timed until flush() returns."""
    writer = writer_for(settings, url, records)
    for n in range(records):
        writer.submit(make_record(n, "writer"))
    started = time.perf_counter()
    writer.start()
    writer.flush(timeout_s=600)
    elapsed = time.perf_counter() - started
    writer.close()
    return records / elapsed


def main() -> None:
    """Run the three timings and print them, then one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument(
        "--database-url", default=None, help="an empty database (default: a temporary SQLite)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mesops-bench-") as tmp:
        settings = get_settings(home=Path(tmp) / "home", database_url=args.database_url)
        url = settings.resolved_database_url
        database.upgrade(url)
        _, build_us = time_build(args.records)
        calls, end_to_end = time_submit(settings, url, args.records)
        writer_alone = time_writer(settings, url, args.records)
    ordered = sorted(calls)
    figures = {
        "benchmark": "prediction_log",
        "database": url.split(":", 1)[0],
        "records": args.records,
        "batch_rows": settings.prediction_log_batch_rows,
        "flush_interval_s": settings.prediction_log_flush_s,
        "build_us": round(build_us, 2),
        "submit_us_mean": round(statistics.fmean(calls), 2),
        "submit_us_p50": round(ordered[len(ordered) // 2], 2),
        "submit_us_p99": round(ordered[int(len(ordered) * 0.99)], 2),
        "submit_us_max": round(ordered[-1], 1),
        "rows_per_s_end_to_end": round(end_to_end),
        "rows_per_s_writer": round(writer_alone),
    }
    print(f"prediction log on {figures['database']}, {args.records} records (1 in 10 with a recommendation)")
    print(f"  build LoggedPrediction  {build_us:8.2f} µs")
    print(
        f"  submit()                {figures['submit_us_mean']:8.2f} µs mean, p50 {figures['submit_us_p50']} µs, "
        f"p99 {figures['submit_us_p99']} µs, max {figures['submit_us_max']} µs"
    )
    print(f"  end to end              {end_to_end:8.0f} rows/s (submit loop + writer until flush)")
    print(
        f"  writer alone            {writer_alone:8.0f} rows/s (batch {settings.prediction_log_batch_rows})"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
