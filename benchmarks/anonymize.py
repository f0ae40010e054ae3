"""Free-text anonymization throughput and recall per planted form.

Notes come from the plant simulator (``pipelines.simulator``) with its planted ground truth; with ``--own`` (or
when the simulator is not installed) the hand-made fixture notes of the tests are repeated instead. Prints
notes/s of the Presidio path (distinct texts, no cache warm-up counted), of ``anonymize_table`` on the
``shift_notes`` table, recall per form and over-redaction, and ends with one JSON line.

    .venv/bin/python benchmarks/anonymize.py [--days 60] [--lines 3] [--notes-per-shift 3] [--own]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from data_contracts.anonymization import anonymize_table  # noqa: E402
from data_contracts.anonymization.engine import TextAnonymizer  # noqa: E402
from data_contracts.anonymization.evaluation import (  # noqa: E402
    GroundTruth,
    cases_from_planted,
    engine_detector,
    evaluate,
)
from data_contracts.anonymization.pseudonyms import Roster  # noqa: E402
from data_contracts.contract import load_contracts  # noqa: E402
from data_contracts.landed import ISSUES, LANDING_ROW, SOURCE  # noqa: E402

KEY = b"benchmark-key-0123456789abcdef"
FREE_TEXT = {"shift_notes": "text", "machine_events": "comment", "inspections": "remark"}


def _landed(frame: pd.DataFrame) -> pd.DataFrame:
    """A typed simulator table as the landing zone holds it: text or None, plus bookkeeping columns."""
    out = frame.astype(object).where(frame.notna(), None)
    out = out.apply(lambda col: col.map(lambda v: v if v is None or isinstance(v, str) else str(v)))
    out[LANDING_ROW] = range(len(out))
    out[SOURCE] = "benchmark"
    out[ISSUES] = "[]"
    return out


def simulator_data(
    days: int, lines: int, notes_per_shift: int
) -> tuple[pd.DataFrame, pd.DataFrame, list[GroundTruth]]:
    """(roster, shift_notes frame, ground truth over all free-text tables) from the simulator."""
    from pipelines.simulator.config import SimulationConfig
    from pipelines.simulator.history import simulate

    history = simulate(
        SimulationConfig(days=days, lines=lines, notes_per_shift=notes_per_shift, employees=120)
    )
    contracts = load_contracts(REPO / "data_contracts" / "contracts")
    texts: dict[tuple[str, str, str], str] = {}
    for table, column in FREE_TEXT.items():
        frame = history[table]
        key = contracts[table].primary_key[0]
        for k, text in zip(frame[key], frame[column], strict=True):
            if isinstance(text, str):
                texts[(table, str(k), column)] = text
    cases = cases_from_planted(history.personal_truth, texts)
    return history["employees"], history["shift_notes"], cases


def own_data(copies: int) -> tuple[pd.DataFrame, pd.DataFrame, list[GroundTruth]]:
    """The tests' hand-made notes, each repeated with a distinct suffix so every text is analyzed."""
    from tests.data_contracts.anonymization import ground_truth, roster_frame

    cases = [(f"{text} Ref {i}.", spans) for i in range(copies) for text, spans in ground_truth()]
    notes = pd.DataFrame(
        {"note_id": [f"SN-{i:06d}" for i in range(len(cases))], "line_id": "L1", "shift": "A",
         "shift_date": "2025-03-01", "written_at": "2025-03-01T13:40:00", "author_name": "Anna Novák",
         "author_badge": "BDG-00417", "text": [t for t, _ in cases]}
    )  # fmt: skip
    return roster_frame(), notes, cases


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--lines", type=int, default=3)
    parser.add_argument("--notes-per-shift", type=int, default=3)
    parser.add_argument(
        "--own", action="store_true", help="use the tests' hand-made notes, not the simulator"
    )
    args = parser.parse_args()

    use_simulator = not args.own and importlib.util.find_spec("pipelines.simulator.history") is not None
    started = time.perf_counter()
    if use_simulator:
        roster, notes, cases = simulator_data(args.days, args.lines, args.notes_per_shift)
    else:
        roster, notes, cases = own_data(copies=200)
    print(f"data: {'simulator' if use_simulator else 'own fixture'} in {time.perf_counter() - started:.1f}s")

    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        started = time.perf_counter()
        engine = TextAnonymizer(Roster.from_frame(roster, KEY), KEY, cache)
        build_s = time.perf_counter() - started

        texts = [t for t in notes["text"] if isinstance(t, str)]
        mean_chars = sum(map(len, texts)) / len(texts)
        started = time.perf_counter()
        engine.anonymize(texts)
        presidio_rate = len(texts) / (time.perf_counter() - started)

        # Long notes: two notes joined (~400 chars), to cover the upper end of real handover notes.
        long_texts = [f"{a} {b}" for a, b in zip(texts[::2], texts[1::2], strict=False)]
        started = time.perf_counter()
        engine.anonymize(long_texts)
        long_rate = len(long_texts) / (time.perf_counter() - started)
        long_chars = sum(map(len, long_texts)) / len(long_texts)

        landed = _landed(notes)
        contract = load_contracts(REPO / "data_contracts" / "contracts")["shift_notes"]
        anonymize_table(
            landed.head(10),
            contract,
            roster,
            key=KEY,
            policy_version="1.0.0",
            batch_id="warm",
            cache_dir=cache,
        )  # builds and caches the engine: the pipeline pays this once per process
        started = time.perf_counter()
        anonymize_table(
            landed, contract, roster, key=KEY, policy_version="1.0.0", batch_id="bench", cache_dir=cache
        )
        table_rate = len(landed) / (time.perf_counter() - started)

        report = evaluate(cases, engine_detector(engine))

    print(f"engine build: {build_s:.2f}s (once per process and roster)")
    print(
        f"free text (shift notes): {len(texts)} notes, mean {mean_chars:.0f} chars, {presidio_rate:,.0f} notes/s"
    )
    print(
        f"free text (two notes joined): {len(long_texts)} notes, mean {long_chars:.0f} chars, {long_rate:,.0f} notes/s"
    )
    print(f"anonymize_table(shift_notes): {len(landed)} rows, {table_rate:,.0f} rows/s")
    print(f"evaluation over {len(cases)} texts (notes, Andon comments, remarks):")
    for form, recall in sorted(report.forms.items()):
        print(f"  {form:<20} {recall.caught:>6}/{recall.planted:<6} recall {recall.recall:.4f}")
    print(
        f"  non-personal tokens redacted: {report.non_personal_tokens_redacted}/{report.non_personal_tokens}"
        f" ({report.token_over_redaction:.4f}); non-personal chars redacted: {report.char_over_redaction:.4f}"
    )
    if report.missed:
        print(f"  first misses: {report.missed[:5]}")
    summary = {
        "benchmark": "anonymize",
        "source": "simulator" if use_simulator else "own",
        "notes": len(texts),
        "mean_chars": round(mean_chars),
        "notes_per_s": round(presidio_rate),
        "long_mean_chars": round(long_chars),
        "long_notes_per_s": round(long_rate),
        "table_rows_per_s": round(table_rate),
        "engine_build_s": round(build_s, 2),
        **report.as_dict(),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
