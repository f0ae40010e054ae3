"""read_batch_tables: the landed Arrow tables are exactly to_arrow of read_batch's frames."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_contracts.contract import Contract, load_contracts
from pipelines.adapters.batch import MANIFEST, read_batch, read_batch_tables
from pipelines.adapters.errors import SourceError
from pipelines.zones import to_arrow

CONTRACTS_DIR = Path(__file__).resolve().parents[3] / "data_contracts" / "contracts"
HEADER = "machine_id,ts,air_temp_k,process_temp_k,speed_rpm,torque_nm,tool_wear_min,vibration_mm_s"


@pytest.fixture(scope="module")
def contracts() -> dict[str, Contract]:
    return load_contracts(CONTRACTS_DIR)


def file_batch(landing: Path, files: dict[str, str | pa.Table], rows: dict[str, int]) -> Path:
    folder = landing / "file" / "f-1"
    folder.mkdir(parents=True)
    for name, body in files.items():
        if isinstance(body, pa.Table):
            pq.write_table(body, folder / name)
        else:
            (folder / name).write_text(body)
    entities = {name: {"rows": rows[name], "files": [name]} for name in files}
    (folder / MANIFEST).write_text(
        json.dumps({"batch_id": "f-1", "source_kind": "file", "entities": entities})
    )
    return folder


def assert_same_tables(folder: Path, contracts: dict[str, Contract]) -> dict[str, pa.Table]:
    frames = read_batch(folder, contracts)
    tables = read_batch_tables(folder, contracts)
    assert set(tables) == set(frames)
    for name, frame in frames.items():
        expected = to_arrow(frame)
        assert tables[name].equals(expected, check_metadata=True), name
        assert tables[name].schema.metadata == expected.schema.metadata
    return tables


@pytest.mark.parametrize(
    "body",
    [
        # plain rows, an empty cell (a null) and a column that is empty on every row (Arrow's null type)
        f"{HEADER}\nM-01,2025-03-01T06:00:00,298.1,,1551,42.8,,1.2\nM-02,2025-03-01T06:01:00,298.2,,1408,,,1.3\n",
        # header drift: an unknown column and a missing one are issues on every row
        "machine_id,ts,air_temp_k,process_temp_k,speed_rpm,torque_nm,extra\nM-01,2025-03-01T06:00:00,1,2,3,4,x\n",
    ],
)
def test_plain_csv_drop_lands_the_same_table(
    tmp_path: Path, contracts: dict[str, Contract], body: str
) -> None:
    folder = file_batch(
        tmp_path, {"sensor_readings.csv": body}, {"sensor_readings.csv": body.count("\n") - 1}
    )
    tables = assert_same_tables(folder, contracts)
    assert tables["sensor_readings"].num_rows == body.count("\n") - 1


def test_csv_with_only_a_header_and_parquet_drops_take_the_frame_path(
    tmp_path: Path, contracts: dict[str, Contract]
) -> None:
    energy = pa.table(
        {"meter_id": ["EM-L1"], "line_id": ["L1"], "ts": ["2025-03-01T06:15:00"], "kwh": [12.5]}
    )
    folder = file_batch(
        tmp_path,
        {"sensor_readings.csv": HEADER + "\n", "energy_readings.parquet": energy},
        {"sensor_readings.csv": 0, "energy_readings.parquet": 1},
    )
    tables = assert_same_tables(folder, contracts)
    assert tables["energy_readings"].column("kwh").to_pylist() == ["12.5"]


def test_row_count_check_applies_to_arrow_drops(tmp_path: Path, contracts: dict[str, Contract]) -> None:
    body = f"{HEADER}\nM-01,2025-03-01T06:00:00,298.1,308.6,1551,42.8,0,1.2\n"
    folder = file_batch(tmp_path, {"sensor_readings.csv": body}, {"sensor_readings.csv": 5})
    with pytest.raises(SourceError, match="announces 5 rows, the files hold 1"):
        read_batch_tables(folder, contracts)
