"""validate with the landed Arrow table at hand gives exactly what it gives from the frame alone."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from data_contracts.contract import load_contracts
from data_contracts.landed import ISSUES, LANDING_ROW, SOURCE
from data_contracts.validation import validate
from pipelines.zones import to_arrow, to_frame

CONTRACTS = load_contracts(Path(__file__).resolve().parents[2] / "data_contracts" / "contracts")


def landed() -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "machine_id": ["M-01", "M-01", "M-99", None, "M-01"],
            "ts": [
                "2025-03-01T06:00:00",
                "2025-03-01T06:01:00",
                "2025-03-01T06:02:00",
                "x",
                "2025-03-01T06:00:00",
            ],
            "air_temp_k": ["298.1", "abc", "298.3", "298.4", "298.1"],
            "process_temp_k": ["308.6", None, "1e3", "308.6", "308.6"],
            "speed_rpm": ["1551", "1551.5", "-3", "1551", "1551"],
            "torque_nm": ["42.8", "42.8", "999", "", "42.8"],
            "tool_wear_min": ["3", "3", "3", "3", "3"],
            "vibration_mm_s": ["1.2", "1.2", "1.2", "1.2", "1.2"],
        }
    )
    frame[LANDING_ROW] = range(len(frame))
    frame[SOURCE] = "file:sensor_readings.csv"
    frame[ISSUES] = ["[]", "[]", '[{"column": null, "rule": "unknown_field", "observed": "x"}]', "[]", "[]"]
    return frame


def test_same_result_with_and_without_the_source_table() -> None:
    table = to_arrow(landed())
    frame = to_frame(table)
    contract = CONTRACTS["sensor_readings"]
    references = {"machines.machine_id": {"M-01"}}
    expected = validate(frame, contract, references=references)
    result = validate(frame, contract, references=references, source_table=table)
    assert expected.quarantined_count > 0 and expected.valid_count > 0
    assert result.summary() == expected.summary()
    pd.testing.assert_frame_equal(result.valid, expected.valid)
    pd.testing.assert_frame_equal(result.quarantined, expected.quarantined)


def test_a_table_of_other_rows_is_not_used() -> None:
    frame = to_frame(to_arrow(landed()))
    other = to_arrow(landed().head(2))
    contract = CONTRACTS["sensor_readings"]
    references = {"machines.machine_id": {"M-01"}}
    result = validate(frame, contract, references=references, source_table=other)
    assert result.summary() == validate(frame, contract, references=references).summary()
