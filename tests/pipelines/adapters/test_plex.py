"""Plex resource files: both shapes, bad shapes, and machine events merged from two resources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_contracts.contract import Contract, load_contracts
from data_contracts.landed import LANDING_ROW, SOURCE, Violation, issues_from_json
from pipelines.adapters.errors import SourceError
from pipelines.adapters.plex import read_plex, read_plex_file

CONTRACTS_DIR = Path(__file__).resolve().parents[3] / "data_contracts" / "contracts"


@pytest.fixture(scope="module")
def contracts() -> dict[str, Contract]:
    return load_contracts(CONTRACTS_DIR)


def status(n: int) -> dict[str, object]:
    return {
        "statusKey": f"ST-{n}",
        "workcenterCode": "M-01",
        "status": "running",
        "alarmCode": None,
        "startTime": f"2025-03-01T06:0{n}:00",
        "endTime": f"2025-03-01T06:0{n}:30",
        "comment": None,
        "reportedBy": None,
    }


def andon(n: int) -> dict[str, object]:
    return {
        "andonKey": f"AN-{n}",
        "workcenterCode": "M-02",
        "machineState": "down",
        "alarmCode": "E042",
        "raisedAt": f"2025-03-01T07:0{n}:00",
        "clearedAt": None,
        "andonComment": "coolant leak",
        "raisedBy": "E-007",
    }


def write(folder: Path, name: str, body: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    return path


def test_data_wrapper_and_bare_list_are_both_read(tmp_path: Path) -> None:
    wrapped = write(tmp_path, "A.json", {"data": [status(1)], "paging": {"total": 1}})
    bare = write(tmp_path, "B.json", [status(2)])
    assert read_plex_file(wrapped)[0]["statusKey"] == "ST-1"
    assert read_plex_file(bare)[0]["statusKey"] == "ST-2"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"rows": []}, r'MachineStatus\.json: a Plex resource file is \{"data": \[...\]\} or a JSON array'),
        ({"data": {"statusKey": 1}}, r"MachineStatus\.json: field 'data': 'data' must be an array, got dict"),
        ("42", "a Plex resource file is"),
        ('{"data": [', r"MachineStatus\.json: invalid JSON"),
    ],
)
def test_other_shapes_are_a_source_error_naming_the_file(
    tmp_path: Path, contracts: dict[str, Contract], body: object, message: str
) -> None:
    write(tmp_path, "MachineStatus.json", body)
    with pytest.raises(SourceError, match=message):
        read_plex(tmp_path, contracts)


def test_status_and_andon_merge_into_machine_events(tmp_path: Path, contracts: dict[str, Contract]) -> None:
    batch = tmp_path / "p-7"
    write(batch, "AndonLog.json", {"data": [andon(1), andon(2)]})
    write(batch, "MachineStatus.json", {"data": [status(1), status(2), status(3)]})
    events = read_plex(batch, contracts)["machine_events"]
    assert events["event_id"].tolist() == ["ST-1", "ST-2", "ST-3", "AN-1", "AN-2"]  # contract mapping order
    assert events[LANDING_ROW].tolist() == [0, 1, 2, 3, 4]
    assert (
        events[SOURCE].tolist()
        == ["plex_status:p-7/MachineStatus.json"] * 3 + ["plex_andon:p-7/AndonLog.json"] * 2
    )
    andon_row = events.iloc[3]
    assert [andon_row["state"], andon_row["comment"], andon_row["reported_by"]] == [
        "down",
        "coolant leak",
        "E-007",
    ]
    assert andon_row["ended_at"] is None
    assert all(issues_from_json(text) == [] for text in events["_issues"])


def test_only_one_resource_of_a_table_present_is_fine(tmp_path: Path, contracts: dict[str, Contract]) -> None:
    write(tmp_path, "AndonLog.json", {"data": [andon(1)]})
    events = read_plex(tmp_path, contracts)["machine_events"]
    assert events["event_id"].tolist() == ["AN-1"]
    assert events[LANDING_ROW].tolist() == [0]


def test_plex_rows_carry_their_issues(tmp_path: Path, contracts: dict[str, Contract]) -> None:
    record = dict(andon(1), shiftCode="A")
    write(tmp_path, "AndonLog.json", {"data": [record]})
    write(tmp_path, "WorkCenter.json", {"data": []})
    landed = read_plex(tmp_path, contracts)
    found = issues_from_json(landed["machine_events"]["_issues"].iloc[0])
    assert found == [Violation(column=None, rule="unknown_field", observed="shiftCode")]
    assert len(landed["machines"]) == 0 and "machine_id" in landed["machines"].columns
