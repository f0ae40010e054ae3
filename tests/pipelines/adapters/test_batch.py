"""Whole batch folders: manifests, dispatch by source kind, file drops beside vendor extracts."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_contracts.contract import Contract, SourceKind, load_contracts
from data_contracts.landed import ISSUES, LANDING_ROW, SOURCE
from pipelines.adapters.batch import MANIFEST, list_batches, read_batch
from pipelines.adapters.errors import SourceError
from pipelines.adapters.opcenter import write_odata_pages

CONTRACTS_DIR = Path(__file__).resolve().parents[3] / "data_contracts" / "contracts"
ORDERS = [
    {"NId": f"WO-{n}", "MaterialNId": "P-101", "ProductionLineNId": "L1", "PlannedQuantity": 100, "StartedQuantity": 100,
     "ProducedQuantity": 97, "ScrapQuantity": 3, "Status": "COMPLETED", "Shift": "A", "ReleasedOn": "2025-03-01T05:00:00",
     "ActualStartTime": "2025-03-01T06:00:00", "ActualEndTime": "2025-03-01T09:00:00", "CreatedBy": "Ana Novak"}
    for n in range(5)
]  # fmt: skip
PERSONNEL = [
    {"NId": "E-007", "BadgeId": "B-77", "FirstName": "Ana", "LastName": "Novak", "Email": None, "Phone": None}
]
SENSOR_CSV = (
    "machine_id,ts,air_temp_k,process_temp_k,speed_rpm,torque_nm,tool_wear_min,vibration_mm_s\n"
    "M-01,2025-03-01T06:00:00,298.1,308.6,1551,42.8,0,1.2\n"
    "M-01,2025-03-01T06:01:00,298.2,308.7,1408,46.3,3,1.3\n"
)


@pytest.fixture(scope="module")
def contracts() -> dict[str, Contract]:
    return load_contracts(CONTRACTS_DIR)


def manifest(folder: Path, kind: str, entities: dict[str, tuple[int, list[str]]], **changes: object) -> None:
    body = {
        "batch_id": folder.name,
        "source_kind": kind,
        "plant_id": "PLANT-01",
        "created_by": "test",
        "entities": {name: {"rows": rows, "files": files} for name, (rows, files) in entities.items()},
    } | changes
    (folder / MANIFEST).write_text(json.dumps(body))


def opcenter_batch(landing: Path, batch_id: str = "op-0001") -> Path:
    folder = landing / "opcenter" / batch_id
    orders = write_odata_pages(folder, "ProductionOrders", ORDERS, page_size=2)
    roster = write_odata_pages(folder, "Personnel", PERSONNEL, page_size=2)
    (folder / "sensor_readings.csv").write_text(SENSOR_CSV)
    entities = {
        "ProductionOrders": (5, orders),
        "Personnel": (1, roster),
        "sensor_readings": (2, ["sensor_readings.csv"]),
    }
    manifest(folder, "opcenter", entities)
    return folder


def test_opcenter_batch_lands_vendor_tables_roster_and_file_drops(
    tmp_path: Path, contracts: dict[str, Contract]
) -> None:
    landed = read_batch(opcenter_batch(tmp_path), contracts)
    assert set(landed) == {"production_orders", "employees", "sensor_readings"}
    orders = landed["production_orders"]
    assert orders["order_id"].tolist() == [f"WO-{n}" for n in range(5)]
    assert orders["planner"].iloc[0] == "Ana Novak"
    assert landed["employees"]["badge_id"].tolist() == ["B-77"]
    sensors = landed["sensor_readings"]
    assert sensors["speed_rpm"].tolist() == ["1551", "1408"]
    assert sensors[SOURCE].iloc[0] == "file:op-0001/sensor_readings.csv"
    assert sensors[LANDING_ROW].tolist() == [0, 1]
    assert all(set(frame[ISSUES]) == {"[]"} for frame in landed.values())


def test_plex_batch_with_a_parquet_drop(tmp_path: Path, contracts: dict[str, Contract]) -> None:
    folder = tmp_path / "plex" / "px-1"
    folder.mkdir(parents=True)
    status = {"statusKey": "ST-1", "workcenterCode": "M-01", "status": "idle", "alarmCode": None,
              "startTime": "2025-03-01T06:00:00", "endTime": None, "comment": None, "reportedBy": None}  # fmt: skip
    (folder / "MachineStatus.json").write_text(json.dumps({"data": [status]}))
    (folder / "AndonLog.json").write_text(json.dumps({"data": []}))
    table = pa.table({"meter_id": ["EM-L1"], "line_id": ["L1"], "ts": ["2025-03-01T06:15:00"], "kwh": [12.5]})
    pq.write_table(table, folder / "energy_readings.parquet")
    manifest(
        folder,
        "plex",
        {"MachineStatus": (1, ["MachineStatus.json"]), "AndonLog": (0, ["AndonLog.json"]),
         "energy_readings": (1, ["energy_readings.parquet"])},
    )  # fmt: skip
    landed = read_batch(folder, contracts)
    assert set(landed) == {"machine_events", "energy_readings"}
    assert landed["machine_events"]["state"].tolist() == ["idle"]
    assert landed["energy_readings"]["kwh"].tolist() == ["12.5"]


def test_file_batch_reads_only_drops(tmp_path: Path, contracts: dict[str, Contract]) -> None:
    folder = tmp_path / "file" / "f-1"
    folder.mkdir(parents=True)
    (folder / "sensor_readings.csv").write_text(SENSOR_CSV)
    (folder / "ProductionOrders.json").write_text(json.dumps({"value": ORDERS}))  # not this kind: ignored
    manifest(folder, "file", {"sensor_readings.csv": (2, ["sensor_readings.csv"])})
    assert set(read_batch(folder, contracts)) == {"sensor_readings"}


def test_folder_without_manifest_is_not_complete(tmp_path: Path, contracts: dict[str, Contract]) -> None:
    folder = opcenter_batch(tmp_path)
    (folder / MANIFEST).unlink()
    with pytest.raises(SourceError, match=r"op-0001/_manifest\.json: no manifest: the batch is not complete"):
        read_batch(folder, contracts)
    assert list_batches(tmp_path) == []


def test_manifest_with_wrong_shape_names_the_field(tmp_path: Path, contracts: dict[str, Contract]) -> None:
    folder = opcenter_batch(tmp_path)
    manifest(folder, "sap", {})
    with pytest.raises(SourceError, match=r"_manifest\.json: field 'source_kind'"):
        read_batch(folder, contracts)


def test_manifest_row_count_must_match_what_the_files_hold(
    tmp_path: Path, contracts: dict[str, Contract]
) -> None:
    folder = opcenter_batch(tmp_path)
    body = json.loads((folder / MANIFEST).read_text())
    body["entities"]["ProductionOrders"]["rows"] = 6
    (folder / MANIFEST).write_text(json.dumps(body))
    with pytest.raises(SourceError, match=r"field 'ProductionOrders': announces 6 rows, the files hold 5"):
        read_batch(folder, contracts)


def test_file_listed_in_manifest_must_exist(tmp_path: Path, contracts: dict[str, Contract]) -> None:
    folder = opcenter_batch(tmp_path)
    (folder / "sensor_readings.csv").unlink()
    with pytest.raises(SourceError, match=r"op-0001/sensor_readings\.csv: listed in the manifest"):
        read_batch(folder, contracts)


def test_a_table_from_two_sources_is_refused(tmp_path: Path, contracts: dict[str, Contract]) -> None:
    folder = opcenter_batch(tmp_path)
    (folder / "production_orders.csv").write_text("order_id\nWO-9\n")
    with pytest.raises(SourceError, match="a second source for table production_orders"):
        read_batch(folder, contracts)


def test_csv_and_parquet_for_one_entity_are_ambiguous(tmp_path: Path, contracts: dict[str, Contract]) -> None:
    folder = opcenter_batch(tmp_path)
    pq.write_table(pa.table({"machine_id": ["M-01"]}), folder / "sensor_readings.parquet")
    with pytest.raises(SourceError, match=r"both a \.csv and a \.parquet drop"):
        read_batch(folder, contracts)


def test_list_batches_finds_complete_batches_sorted(tmp_path: Path) -> None:
    opcenter_batch(tmp_path, "op-0002")
    opcenter_batch(tmp_path, "op-0001")
    (tmp_path / "opcenter" / "op-0003").mkdir()  # still being written: no manifest yet
    plex = tmp_path / "plex" / "px-1"
    plex.mkdir(parents=True)
    manifest(plex, "plex", {})
    found = list_batches(tmp_path)
    assert [(ref.kind, ref.batch_id) for ref in found] == [
        (SourceKind.OPCENTER, "op-0001"),
        (SourceKind.OPCENTER, "op-0002"),
        (SourceKind.PLEX, "px-1"),
    ]
    assert found[0].path == tmp_path / "opcenter" / "op-0001"
    assert found[0].manifest.entities["ProductionOrders"].rows == 5
    assert list_batches(tmp_path / "nowhere") == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"source_kind": "plex"}, "field 'source_kind'"), ({"batch_id": "x"}, "field 'batch_id'")],
)
def test_list_batches_refuses_a_misplaced_batch(
    tmp_path: Path, changes: dict[str, str], message: str
) -> None:
    folder = tmp_path / "opcenter" / "op-1"
    folder.mkdir(parents=True)
    manifest(folder, "opcenter", {}, **changes)
    with pytest.raises(SourceError, match=message):
        list_batches(tmp_path)


def test_manifest_may_omit_plant_creator_and_row_counts(
    tmp_path: Path, contracts: dict[str, Contract]
) -> None:
    folder = tmp_path / "file" / "f-2"
    folder.mkdir(parents=True)
    (folder / "sensor_readings.csv").write_text(SENSOR_CSV)
    body = {
        "batch_id": "f-2",
        "source_kind": "file",
        "entities": {"sensor_readings": {"files": ["sensor_readings.csv"]}},
    }
    (folder / MANIFEST).write_text(json.dumps(body))
    assert len(read_batch(folder, contracts)["sensor_readings"]) == 2
    assert list_batches(tmp_path)[0].manifest.plant_id is None
