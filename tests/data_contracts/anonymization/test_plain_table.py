"""anonymize_plain_table: a table without personal columns anonymized in Arrow, identical to the frame path."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from data_contracts.anonymization import AnonymizationError, verify_attestation
from data_contracts.anonymization.anonymizer import anonymize_plain_table, anonymize_table_to_arrow
from data_contracts.anonymization.attestation import frame_content_hash, table_content_hash
from data_contracts.contract import load_contracts
from data_contracts.landed import ISSUES, LANDING_ROW, SOURCE
from pipelines.zones import to_arrow, to_frame
from tests.data_contracts.anonymization import roster_frame

KEY = b"plain-test-key-0123456789abcdef"
CONTRACTS = load_contracts(Path(__file__).resolve().parents[3] / "data_contracts" / "contracts")
WHEN = datetime(2025, 3, 1, 6, 0, tzinfo=UTC)
DRIFT = json.dumps(
    [
        {"column": None, "rule": "unknown_field", "observed": "ring Kwame Mensah on +44 7700 900123"},
        {"column": "torque_nm", "rule": "unreadable_value", "observed": "[1, 2]"},
    ]
)


def landed_sensor(issues: list[str | None], empty_column: bool = False) -> pa.Table:
    n = len(issues)
    frame = pd.DataFrame(
        {
            "machine_id": ["M-01"] * n,
            "ts": [f"2025-03-01T06:{i:02d}:00" for i in range(n)],
            "air_temp_k": ["298.1"] * n,
            "process_temp_k": [None if empty_column else "308.6"] * n,
            "speed_rpm": ["1551"] * n,
            "torque_nm": ["42.8"] * n,
            "tool_wear_min": ["3"] * n,
            "vibration_mm_s": [None, *["1.2"] * (n - 1)],
        }
    )
    frame[LANDING_ROW] = range(n)
    frame[SOURCE] = "file:sensor_readings.csv"
    frame[ISSUES] = issues
    return to_arrow(frame)


def both_paths(table: pa.Table, tmp: Path, table_name: str = "sensor_readings"):
    options = {"key": KEY, "policy_version": "1.0.0", "batch_id": "b-1", "cache_dir": tmp, "created_at": WHEN}
    contract = CONTRACTS[table_name]
    _, expected, expected_table = anonymize_table_to_arrow(
        to_frame(table), contract, roster_frame(), source_table=table, **options
    )
    return expected, expected_table, anonymize_plain_table(table, contract, roster_frame(), **options)


@pytest.mark.parametrize(
    ("issues", "empty_column"),
    [
        (["[]", "[]", "[]"], False),
        ([DRIFT, "[]", DRIFT, None], False),
        ([None, None], True),
        (["[]", "not json", "[]"], False),
    ],
)
def test_plain_table_equals_the_frame_path(
    tmp_path: Path, issues: list[str | None], empty_column: bool
) -> None:
    table = landed_sensor(issues, empty_column)
    if "not json" in issues:
        with pytest.raises(AnonymizationError, match=r"_issues \(row 1\): not a JSON list"):
            both_paths(table, tmp_path)
        with pytest.raises(AnonymizationError, match=r"_issues \(row 1\): not a JSON list"):
            anonymize_plain_table(
                table, CONTRACTS["sensor_readings"], roster_frame(), key=KEY, policy_version="1",
                batch_id="b", cache_dir=tmp_path,
            )  # fmt: skip
        return
    expected, expected_table, plain = both_paths(table, tmp_path)
    assert plain is not None
    attestation, out = plain
    assert attestation == expected
    assert out.equals(expected_table, check_metadata=True)
    verify_attestation(to_frame(out), attestation, out)


def test_quoted_name_is_redacted_in_arrow(tmp_path: Path) -> None:
    _, _, plain = both_paths(landed_sensor([DRIFT, "[]"]), tmp_path)
    assert plain is not None
    attestation, out = plain
    issues = out.column(ISSUES).to_pylist()
    assert "Kwame Mensah" not in issues[0] and "7700 900123" not in issues[0]
    assert issues[1] == "[]"
    assert attestation.columns[0].values == 1  # one quoted value of a column the contract does not know


def test_contract_with_personal_columns_takes_the_frame_path(tmp_path: Path) -> None:
    frame = pd.DataFrame({c: ["x"] for c in CONTRACTS["operations"].column_names})
    frame[LANDING_ROW] = [0]
    frame[SOURCE] = "s"
    frame[ISSUES] = "[]"
    result = anonymize_plain_table(
        to_arrow(frame), CONTRACTS["operations"], roster_frame(), key=KEY, policy_version="1",
        batch_id="b", cache_dir=tmp_path,
    )  # fmt: skip
    assert result is None


def test_table_content_hash_equals_the_frame_hash() -> None:
    table = landed_sensor([DRIFT, None, "[]"], empty_column=True)
    assert table_content_hash(table) == frame_content_hash(to_frame(table))
    floats = pa.Table.from_pandas(pd.DataFrame({"x": [1.5, 2.0]}), preserve_index=False)
    assert table_content_hash(floats) is None
