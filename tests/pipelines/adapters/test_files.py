"""CSV and Parquet drops: header drift as row issues, values as text, and the two real datasets."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_contracts.contract import Contract, load_contracts
from data_contracts.landed import ISSUES, LANDING_ROW, SOURCE, Violation, issues_from_json
from pipelines.adapters.errors import SourceError
from pipelines.adapters.files import read_file_drop

REPO_ROOT = Path(__file__).resolve().parents[3]
CONTRACTS_DIR = REPO_ROOT / "data_contracts" / "contracts"
DATASETS = REPO_ROOT.parent / "shared" / "datasets"


@pytest.fixture(scope="module")
def contracts() -> dict[str, Contract]:
    return load_contracts(CONTRACTS_DIR)


def read(path: Path, contract: Contract):
    return read_file_drop(path, contract, contract.sources["file"])


ENERGY_HEADER = "meter_id,line_id,ts,kwh"


def test_csv_values_stay_text_and_empty_cells_are_none(
    tmp_path: Path, contracts: dict[str, Contract]
) -> None:
    path = tmp_path / "energy_readings.csv"
    path.write_text(f"{ENERGY_HEADER}\nEM-L1,L1,2025-03-01T06:15:00,12.50\nEM-L2,,2025-03-01T06:30:00,NA\n")
    frame = read(path, contracts["energy_readings"])
    assert frame["kwh"].tolist() == ["12.50", "NA"]  # NA is a value a validator must judge, not a null
    assert frame["line_id"].tolist() == ["L1", None]
    assert frame[LANDING_ROW].tolist() == [0, 1]
    assert frame[SOURCE].iloc[0] == f"file:{tmp_path.name}/energy_readings.csv"
    assert set(frame[ISSUES]) == {"[]"}


def test_csv_header_is_renamed_by_the_mapping(contracts: dict[str, Contract], tmp_path: Path) -> None:
    path = tmp_path / "steel.csv"
    path.write_text("date,Usage_kWh,NSM,Load_Type,extra\n01/01/2018 00:15,3.17,900,Light_Load,x\n")
    frame = read(path, contracts["steel_energy"])
    assert frame[["ts", "usage_kwh", "nsm", "load_type"]].iloc[0].tolist() == [
        "01/01/2018 00:15",
        "3.17",
        "900",
        "Light_Load",
    ]


def test_extra_csv_column_is_unknown_field_on_every_row(
    tmp_path: Path, contracts: dict[str, Contract]
) -> None:
    rows = "".join(f"EM-L1,L1,2025-03-01T06:{m:02d}:00,1.0,remark\n" for m in range(50))
    path = tmp_path / "energy_readings.csv"
    path.write_text(f"{ENERGY_HEADER},note\n{rows}")
    frame = read(path, contracts["energy_readings"])
    assert issues_from_json(frame[ISSUES].iloc[7]) == [
        Violation(column=None, rule="unknown_field", observed="note")
    ]
    assert len({id(text) for text in frame[ISSUES]}) == 1  # one shared string, not one per row


def test_missing_csv_column_is_missing_field_on_every_row(
    tmp_path: Path, contracts: dict[str, Contract]
) -> None:
    path = tmp_path / "energy_readings.csv"
    path.write_text("meter_id,ts,kwh\nEM-L1,2025-03-01T06:15:00,1.0\nEM-L1,2025-03-01T06:30:00,2.0\n")
    frame = read(path, contracts["energy_readings"])
    assert frame["line_id"].tolist() == [None, None]
    for text in frame[ISSUES]:
        assert issues_from_json(text) == [Violation(column="line_id", rule="missing_field")]


def test_byte_order_mark_does_not_rename_the_first_header(
    tmp_path: Path, contracts: dict[str, Contract]
) -> None:
    path = tmp_path / "energy_readings.csv"
    path.write_bytes(f"\ufeff{ENERGY_HEADER}\nEM-L1,L1,2025-03-01T06:15:00,1.0\n".encode())
    frame = read(path, contracts["energy_readings"])
    assert frame["meter_id"].tolist() == ["EM-L1"]
    assert frame[ISSUES].iloc[0] == "[]"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            f"{ENERGY_HEADER}\nEM-L1,L1,2025-03-01T06:15:00,1.0,\u00b5\n".encode("latin-1"),
            r"energy_readings\.csv: not UTF-8 text",
        ),
        (b"", r"energy_readings\.csv: empty file"),
        (f"{ENERGY_HEADER}\nEM-L1,L1,x,1,2,3\n".encode(), r"energy_readings\.csv: not well-formed CSV"),
        (f"{ENERGY_HEADER}\nEM-L1,L1,x,1\nEM-L1,L1,x,1,2\n".encode(), r"Expected 4 fields in line 3, saw 5"),
    ],
)
def test_unreadable_csv_is_a_source_error(
    tmp_path: Path, contracts: dict[str, Contract], content: bytes, message: str
) -> None:
    path = tmp_path / "energy_readings.csv"
    path.write_bytes(content)
    with pytest.raises(SourceError, match=message):
        read(path, contracts["energy_readings"])


def test_unsupported_suffix_is_a_source_error(tmp_path: Path, contracts: dict[str, Contract]) -> None:
    path = tmp_path / "energy_readings.xlsx"
    path.write_bytes(b"PK")
    with pytest.raises(SourceError, match=r"unsupported file type '\.xlsx'"):
        read(path, contracts["energy_readings"])


def test_parquet_typed_values_become_text_like_json(tmp_path: Path, contracts: dict[str, Contract]) -> None:
    table = pa.table(
        {
            "sensor_id": pa.array(["S1", None, "S3"]),  # not in the mapping: unknown_field
            "machine_id": pa.array(["M-01", "M-02", None]).dictionary_encode(),
            "ts": pa.array(
                [datetime(2025, 3, 1, 6, 15), None, datetime(2025, 3, 1, 6, 16)], pa.timestamp("us")
            ),
            "air_temp_k": pa.array([298.0, 298.25, None], pa.float64()),
            "process_temp_k": pa.array([0.1, 308.5, 1e20], pa.float32()),
            "speed_rpm": pa.array([1551, None, 0], pa.int64()),
            "torque_nm": pa.array([True, False, None]),
            "tool_wear_min": pa.array([[1, 2], None, [3]]),
        }
    )
    path = tmp_path / "sensor_readings.parquet"
    pq.write_table(table, path)
    frame = read(path, contracts["sensor_readings"])
    assert frame["machine_id"].tolist() == ["M-01", "M-02", None]
    assert frame["ts"].tolist() == ["2025-03-01T06:15:00", None, "2025-03-01T06:16:00"]
    assert frame["air_temp_k"].tolist() == ["298.0", "298.25", None]
    assert frame["process_temp_k"].tolist() == ["0.1", "308.5", "1e+20"]
    assert frame["speed_rpm"].tolist() == ["1551", None, "0"]
    assert frame["torque_nm"].tolist() == ["true", "false", None]
    assert frame["tool_wear_min"].tolist() == [None, None, None]
    first = issues_from_json(frame[ISSUES].iloc[0])
    assert Violation(column=None, rule="unknown_field", observed="sensor_id") in first
    assert Violation(column="vibration_mm_s", rule="missing_field") in first
    assert Violation(column="tool_wear_min", rule="unreadable_value", observed="[1, 2]") in first
    assert Violation(column="tool_wear_min", rule="unreadable_value", observed="[3]") in issues_from_json(
        frame[ISSUES].iloc[2]
    )
    assert all(v.rule != "unreadable_value" for v in issues_from_json(frame[ISSUES].iloc[1]))


def test_parquet_fractions_of_seconds_and_dates(tmp_path: Path, contracts: dict[str, Contract]) -> None:
    table = pa.table(
        {
            "note_id": ["N1", "N2"],
            "shift_date": pa.array([date(2025, 3, 1), None], pa.date32()),
            "written_at": pa.array(
                [datetime(2025, 3, 1, 6, 0, 0, 500000), datetime(2025, 3, 1, 7, 0)], pa.timestamp("ms")
            ),
        }
    )
    path = tmp_path / "shift_notes.parquet"
    pq.write_table(table, path)
    frame = read(path, contracts["shift_notes"])
    assert frame["shift_date"].tolist() == ["2025-03-01", None]
    assert frame["written_at"].tolist() == ["2025-03-01T06:00:00.500", "2025-03-01T07:00:00.000"]


def test_parquet_that_is_not_parquet_is_a_source_error(
    tmp_path: Path, contracts: dict[str, Contract]
) -> None:
    path = tmp_path / "sensor_readings.parquet"
    path.write_text(json.dumps({"not": "parquet"}))
    with pytest.raises(SourceError, match=r"sensor_readings\.parquet: not a readable Parquet file"):
        read(path, contracts["sensor_readings"])


@pytest.mark.parametrize(
    ("file_name", "table", "rows"),
    [("ai4i2020.csv", "ai4i_process_steps", 10_000), ("steel_industry_energy.csv", "steel_energy", 35_040)],
)
def test_real_dataset_lands_whole_without_issues(
    contracts: dict[str, Contract], file_name: str, table: str, rows: int
) -> None:
    path = DATASETS / file_name
    if not path.is_file():
        pytest.skip(f"real dataset {path} is absent")
    contract = contracts[table]
    assert path.stem == contract.sources["file"].entity
    frame = read(path, contract)
    assert len(frame) == rows
    assert set(frame[ISSUES]) == {"[]"}
    assert frame[contract.column_names].notna().all().all()
    assert frame[LANDING_ROW].tolist() == list(range(rows))


def _cells(values: object) -> list[tuple[type, object]]:
    # NaN (pandas' filler for a short row) compared by kind, every other cell by type and value
    return [(type(v), "NaN" if isinstance(v, float) and v != v else v) for v in values]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "text",
    [
        "a,b\n1,2\n,x\n",
        "\ufeffa,b\nx,y\n",
        'a,b\n"x,1","y ""q"""\n"",NA\n',
        'a,b\n"line1\nline2",z\n',
        "a,b\r\n1,2\r\n",
        "a,b\n1,2\n\n3,4\n",
        "a,b\n",
        "a,a\n1,2\n",
        "a,\n1,2\n",
        "a,b,c\n1,2\n",
    ],
)
def test_arrow_csv_reader_reads_like_the_pandas_one(tmp_path: Path, text: str) -> None:
    from pipelines.adapters.files import _read_csv, _read_csv_pandas

    path = tmp_path / "x.csv"
    path.write_text(text, encoding="utf-8", newline="")
    fast, fast_rows, _ = _read_csv(path, "x")
    slow, slow_rows, _ = _read_csv_pandas(path, "x")
    assert fast_rows == slow_rows
    assert {k: _cells(v) for k, v in fast.items()} == {k: _cells(v) for k, v in slow.items()}
