"""Opcenter OData page files: the page chain, records as written, absent entity sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_contracts.contract import Contract, load_contracts
from data_contracts.landed import ISSUES, LANDING_ROW, SOURCE
from pipelines.adapters.errors import SourceError
from pipelines.adapters.opcenter import read_odata_files, read_opcenter, write_odata_pages

CONTRACTS_DIR = Path(__file__).resolve().parents[3] / "data_contracts" / "contracts"


@pytest.fixture(scope="module")
def contracts() -> dict[str, Contract]:
    return load_contracts(CONTRACTS_DIR)


def event(n: int) -> dict[str, object]:
    return {
        "Id": f"EV-{n}",
        "EquipmentNId": "M-01",
        "State": "down",
        "AlarmCode": "A101",
        "StartTime": f"2025-03-01T06:{n:02d}:00",
        "EndTime": None,
        "Comment": "spindle noise",
        "ReportedBy": "E-007",
    }


def page(folder: Path, name: str, body: object) -> None:
    (folder / name).write_text(json.dumps(body) if not isinstance(body, str) else body)


def test_pages_are_read_in_order_following_the_chain(tmp_path: Path) -> None:
    write_odata_pages(tmp_path, "EquipmentEvents", [event(i) for i in range(7)], page_size=3)
    records = list(read_odata_files(tmp_path, "EquipmentEvents"))
    assert [r["Id"] for r in records] == [f"EV-{i}" for i in range(7)]


def test_page_numbers_sort_numerically_not_by_name(tmp_path: Path) -> None:
    write_odata_pages(tmp_path, "EquipmentEvents", [event(i) for i in range(12)], page_size=1)
    assert [r["Id"] for r in read_odata_files(tmp_path, "EquipmentEvents")] == [f"EV-{i}" for i in range(12)]


def test_a_single_unnumbered_page_is_accepted(tmp_path: Path) -> None:
    page(tmp_path, "EquipmentEvents.json", {"@odata.context": "x", "value": [event(1)]})
    assert [r["Id"] for r in read_odata_files(tmp_path, "EquipmentEvents")] == ["EV-1"]


def test_numbers_are_kept_as_written(tmp_path: Path, contracts: dict[str, Contract]) -> None:
    text = '{"value": [{"NId": "O-1", "PlannedQuantity": 12.50, "StartedQuantity": 1e3, "ScrapQuantity": 7}]}'
    page(tmp_path, "ProductionOrders.json", text)
    frame = read_opcenter(tmp_path, {"production_orders": contracts["production_orders"]})[
        "production_orders"
    ]
    assert frame[["planned_qty", "started_qty", "scrap_qty"]].iloc[0].tolist() == ["12.50", "1e3", "7"]


def test_missing_page_is_a_source_error_naming_it(tmp_path: Path) -> None:
    write_odata_pages(tmp_path, "EquipmentEvents", [event(i) for i in range(9)], page_size=3)
    (tmp_path / "EquipmentEvents-0002.json").unlink()
    with pytest.raises(SourceError, match=r"EquipmentEvents-0002\.json: page missing"):
        list(read_odata_files(tmp_path, "EquipmentEvents"))


def test_last_page_with_next_link_is_a_source_error(tmp_path: Path) -> None:
    write_odata_pages(tmp_path, "EquipmentEvents", [event(i) for i in range(9)], page_size=3)
    (tmp_path / "EquipmentEvents-0003.json").unlink()
    with pytest.raises(SourceError, match=r"EquipmentEvents-0002\.json: last page file links to a next page"):
        list(read_odata_files(tmp_path, "EquipmentEvents"))


def test_page_without_next_link_before_the_last_is_a_source_error(tmp_path: Path) -> None:
    write_odata_pages(tmp_path, "EquipmentEvents", [event(i) for i in range(9)], page_size=3)
    first = tmp_path / "EquipmentEvents-0001.json"
    body = json.loads(first.read_text())
    del body["@odata.nextLink"]
    first.write_text(json.dumps(body))
    with pytest.raises(SourceError, match=r"EquipmentEvents-0001\.json: page has no @odata.nextLink"):
        list(read_odata_files(tmp_path, "EquipmentEvents"))


def test_skiptoken_that_does_not_add_up_is_a_source_error(tmp_path: Path) -> None:
    write_odata_pages(tmp_path, "EquipmentEvents", [event(i) for i in range(9)], page_size=3)
    second = tmp_path / "EquipmentEvents-0002.json"
    body = json.loads(second.read_text())
    body["value"] = body["value"][:2]  # a truncated page
    second.write_text(json.dumps(body))
    with pytest.raises(SourceError, match=r"0002\.json: field '@odata.nextLink': \$skiptoken=6 but 5 rows"):
        list(read_odata_files(tmp_path, "EquipmentEvents"))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"value": [', r"EquipmentEvents\.json: invalid JSON at line 1"),
        ({"data": []}, r"EquipmentEvents\.json: field 'value': OData page without a 'value' array"),
        ({"value": {"Id": 1}}, r"field 'value': 'value' must be an array, got dict"),
        ([event(1)], r"an OData page is a JSON object, got list"),
    ],
)
def test_unreadable_page_is_a_source_error(tmp_path: Path, body: object, message: str) -> None:
    page(tmp_path, "EquipmentEvents.json", body)
    with pytest.raises(SourceError, match=message):
        list(read_odata_files(tmp_path, "EquipmentEvents"))


def test_single_and_numbered_pages_together_are_ambiguous(tmp_path: Path) -> None:
    write_odata_pages(tmp_path, "EquipmentEvents", [event(1)], page_size=3)
    page(tmp_path, "EquipmentEvents.json", {"value": []})
    with pytest.raises(SourceError, match="both a single page and numbered pages"):
        list(read_odata_files(tmp_path, "EquipmentEvents"))


def test_read_opcenter_lands_mapped_sets_and_skips_absent_ones(
    tmp_path: Path, contracts: dict[str, Contract]
) -> None:
    batch = tmp_path / "b-001"
    write_odata_pages(batch, "EquipmentEvents", [event(i) for i in range(5)], page_size=2)
    page(
        batch,
        "Personnel.json",
        {"value": [{"NId": "E-007", "BadgeId": "B1", "FirstName": "Ana", "LastName": "Novak"}]},
    )
    landed = read_opcenter(batch, contracts)
    assert set(landed) == {"machine_events", "employees"}
    events = landed["machine_events"]
    assert events["event_id"].tolist() == [f"EV-{i}" for i in range(5)]
    assert events[LANDING_ROW].tolist() == list(range(5))
    assert events["alarm_code"].iloc[0] == "A101"
    assert set(events[SOURCE]) == {"opcenter:b-001/EquipmentEvents"}
    roster = landed["employees"]
    assert roster["first_name"].tolist() == ["Ana"]
    assert roster[["email", "phone"]].iloc[0].tolist() == [None, None]
    assert "missing_field" in roster[ISSUES].iloc[0]  # Email and Phone fields absent from the record
