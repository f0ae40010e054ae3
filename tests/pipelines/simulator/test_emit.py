"""Emitters: batch folders in exactly the shapes of the landing conventions, byte-identical per seed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from data_contracts.contract import load_contracts
from pipelines.simulator import SimulationConfig, emit_extracts, simulate

CONTRACTS = load_contracts(Path(__file__).resolve().parents[3] / "data_contracts" / "contracts")


@pytest.fixture(scope="module")
def history():
    return simulate(SimulationConfig(days=5, seed=9, defect_rate=0.02))


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize(("mes", "fmt"), [("opcenter", "csv"), ("plex", "parquet"), ("file", "csv")])
def test_emitting_twice_gives_identical_bytes(history, tmp_path, mes, fmt):
    a = emit_extracts(history, tmp_path / "a" / "b1", mes, page_size=700, file_format=fmt, batch_id="b1")
    b = emit_extracts(history, tmp_path / "b" / "b1", mes, page_size=700, file_format=fmt, batch_id="b1")
    assert _hashes(a) == _hashes(b)


def test_opcenter_pages_and_manifest(history, tmp_path):
    folder = emit_extracts(history, tmp_path / "batch-7", "opcenter", page_size=100)
    manifest = json.loads((folder / "_manifest.json").read_text())
    assert manifest["batch_id"] == "batch-7" and manifest["source_kind"] == "opcenter"
    assert set(manifest) == {"batch_id", "source_kind", "plant_id", "created_by", "entities"}
    ops = manifest["entities"]["Operations"]
    assert ops["rows"] == len(history.tables["operations"])
    pages = [json.loads((folder / f).read_text()) for f in ops["files"]]
    assert ops["files"][0] == "Operations-0001.json" and len(pages) > 1
    for n, page in enumerate(pages):
        assert page["@odata.context"] == "$metadata#Operations"
        if n < len(pages) - 1:
            assert page["@odata.nextLink"] == f"Operations?$skiptoken={(n + 1) * 100}"
        else:
            assert "@odata.nextLink" not in page
    records = [r for page in pages for r in page["value"]]
    fields = CONTRACTS["operations"].sources["opcenter"].fields
    assert list(records[0]) == list(fields)
    frame = history.tables["operations"]
    for i in (0, len(records) // 2, len(records) - 1):  # the n-th record is the n-th row
        assert records[i]["NId"] == frame["operation_id"].iloc[i]
    assert set(manifest["entities"]) >= {"WorkCenters", "Personnel", "ShiftBookEntries", "sensor_readings"}
    assert (folder / "sensor_readings.csv").exists() and (folder / "energy_readings.csv").exists()
    assert "material_consumption" not in manifest["entities"]


def test_timestamps_are_iso_without_zone_and_nulls_are_null(history, tmp_path):
    folder = emit_extracts(history, tmp_path / "b", "opcenter", page_size=100_000)
    orders = json.loads((folder / "ProductionOrders-0001.json").read_text())["value"]
    clean = [r for r in orders if r["Status"] == "COMPLETED" and isinstance(r["ReleasedOn"], str)]
    assert pd.Timestamp(clean[0]["ReleasedOn"]).strftime("%Y-%m-%dT%H:%M:%S") == clean[0]["ReleasedOn"]
    assert any(r["ActualEndTime"] is None for r in orders)
    notes = json.loads((folder / "ShiftBookEntries-0001.json").read_text())["value"]
    assert all(len(n["ShiftDate"]) == 10 for n in notes if isinstance(n["ShiftDate"], str))


def test_plex_splits_andon_calls_from_status_changes(history, tmp_path):
    folder = emit_extracts(history, tmp_path / "p", "plex")
    manifest = json.loads((folder / "_manifest.json").read_text())
    status = json.loads((folder / "MachineStatus.json").read_text())["data"]
    andon = json.loads((folder / "AndonLog.json").read_text())["data"]
    events = history.tables["machine_events"]
    assert len(status) + len(andon) == len(events)
    assert andon and all(r["machineState"] == "down" and r["andonComment"] for r in andon)
    assert set(andon[0]) == set(CONTRACTS["machine_events"].sources["plex_andon"].fields)
    assert {"material_consumption", "inspections", "sensor_readings", "energy_readings"} <= set(
        manifest["entities"]
    )
    assert manifest["entities"]["ProdOrderRouting"]["rows"] == len(history.tables["operations"])


def test_file_drops_round_trip(history, tmp_path):
    folder = emit_extracts(history, tmp_path / "f", "file", file_format="parquet")
    manifest = json.loads((folder / "_manifest.json").read_text())
    assert set(manifest["entities"]) == set(history.tables)
    for name, frame in history.tables.items():
        back = pd.read_parquet(folder / f"{name}.parquet")
        assert list(back.columns) == list(frame.columns) and len(back) == len(frame)
    csv = emit_extracts(history, tmp_path / "c", "file")
    sensors = pd.read_csv(csv / "sensor_readings.csv", dtype=str)
    assert len(sensors) == len(history.tables["sensor_readings"])
    assert sensors["ts"].str.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}").all()


def test_a_complete_batch_is_not_overwritten(history, tmp_path):
    folder = emit_extracts(history, tmp_path / "x", "file")
    with pytest.raises(FileExistsError, match="batch_dir"):
        emit_extracts(history, folder, "file")
