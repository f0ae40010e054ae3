"""records_to_landed: renaming, values as text, and row-level issues instead of crashes."""

from __future__ import annotations

import json
from pathlib import Path
from types import MappingProxyType

import pytest

from data_contracts.contract import Contract, SourceMapping, load_contracts
from data_contracts.landed import BOOKKEEPING, ISSUES, LANDING_ROW, SOURCE, Violation, issues_from_json
from pipelines.adapters.errors import SourceError
from pipelines.adapters.records import records_to_landed

CONTRACTS_DIR = Path(__file__).resolve().parents[3] / "data_contracts" / "contracts"


@pytest.fixture(scope="module")
def operations() -> Contract:
    return load_contracts(CONTRACTS_DIR)["operations"]


def op_record(n: int = 1, **changes: object) -> dict[str, object]:
    record: dict[str, object] = {
        "NId": f"OP-{n}",
        "WorkOrderNId": "WO-1",
        "Sequence": 1,
        "EquipmentNId": "M-01",
        "OperatorNId": "E-007",
        "PlannedDurationMinutes": 12.5,
        "ActualStartTime": "2025-03-01T06:15:00",
        "ActualEndTime": None,
        "QuantityIn": 100,
        "QuantityGood": 98,
        "QuantityScrap": 2,
        "Status": "COMPLETED",
    }
    record.update(changes)
    return record


def land(contract: Contract, records: list, **kwargs: object):
    return records_to_landed(records, contract, contract.sources["opcenter"], "opcenter:test", **kwargs)


def issues(frame, row: int) -> list[Violation]:
    return issues_from_json(frame[ISSUES].iloc[row])


def test_columns_are_the_contract_columns_renamed_plus_bookkeeping(operations: Contract) -> None:
    frame = land(operations, [op_record(1), op_record(2)])
    assert list(frame.columns) == operations.column_names + list(BOOKKEEPING)
    assert frame["operation_id"].tolist() == ["OP-1", "OP-2"]
    assert frame["machine_id"].tolist() == ["M-01", "M-01"]
    assert frame[SOURCE].tolist() == ["opcenter:test"] * 2
    assert issues(frame, 0) == [] and issues(frame, 1) == []


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (12, "12"),
        (12.5, "12.5"),
        (12.0, "12.0"),
        (0.1, "0.1"),
        (1e20, "1e+20"),
        (123456789012345678901234567890, "123456789012345678901234567890"),
        (True, "true"),
        (False, "false"),
        ("12.50", "12.50"),
        ("", ""),
        (None, None),
    ],
)
def test_values_are_kept_as_text(operations: Contract, value: object, text: str | None) -> None:
    frame = land(operations, [op_record(PlannedDurationMinutes=value)])
    assert frame["planned_duration_min"].iloc[0] == text
    assert issues(frame, 0) == []


def test_mixed_types_in_one_column_are_each_converted(operations: Contract) -> None:
    values = [1, "2", 3.5, None, True]
    frame = land(operations, [op_record(i, QuantityIn=v) for i, v in enumerate(values)])
    assert frame["qty_in"].tolist() == ["1", "2", "3.5", None, "true"]


def test_landing_row_counts_from_start_row_in_source_order(operations: Contract) -> None:
    frame = land(operations, [op_record(i) for i in range(5)], start_row=10)
    assert frame[LANDING_ROW].tolist() == [10, 11, 12, 13, 14]
    assert frame["operation_id"].tolist() == [f"OP-{i}" for i in range(5)]


def test_unknown_field_is_a_row_issue_but_odata_control_fields_are_not(operations: Contract) -> None:
    annotations = {"@odata.etag": 'W/"1"', "PlannedDurationMinutes@odata.type": "#Decimal"}
    records = [op_record(1, Plant="P1"), op_record(2, **annotations), op_record(3)]
    frame = land(operations, records)
    assert issues(frame, 0) == [Violation(column=None, rule="unknown_field", observed="Plant")]
    assert issues(frame, 1) == []
    assert issues(frame, 2) == []


def test_missing_field_is_a_row_issue_and_the_cell_is_none(operations: Contract) -> None:
    record = op_record(1)
    del record["Status"]
    frame = land(operations, [record, op_record(2)])
    assert frame["status"].tolist() == [None, "COMPLETED"]
    assert issues(frame, 0) == [Violation(column="status", rule="missing_field")]
    assert issues(frame, 1) == []


def test_null_value_is_not_a_missing_field(operations: Contract) -> None:
    frame = land(operations, [op_record(1, OperatorNId=None)])
    assert frame["operator_id"].iloc[0] is None
    assert issues(frame, 0) == []


@pytest.mark.parametrize("nested", [{"value": 3}, [1, 2]])
def test_nested_value_is_unreadable_and_the_cell_is_none(operations: Contract, nested: object) -> None:
    frame = land(operations, [op_record(1), op_record(2, QuantityGood=nested)])
    assert frame["qty_good"].tolist() == ["98", None]
    found = issues(frame, 1)
    assert found == [Violation(column="qty_good", rule="unreadable_value", observed=json.dumps(nested))]
    assert issues(frame, 0) == []


def test_row_with_several_problems_lists_them_all(operations: Contract) -> None:
    record = op_record(1, Extra=1, Sequence={"a": 1})
    del record["Status"]
    rules = {(v.column, v.rule) for v in issues(land(operations, [record]), 0)}
    assert rules == {(None, "unknown_field"), ("status", "missing_field"), ("sequence", "unreadable_value")}


def test_a_record_that_is_not_an_object_becomes_an_empty_row(operations: Contract) -> None:
    frame = land(operations, [op_record(1), [1, 2], op_record(3)])
    assert frame["operation_id"].tolist() == ["OP-1", None, "OP-3"]
    assert issues(frame, 1) == [Violation(column=None, rule="unreadable_record", observed="[1, 2]")]
    assert issues(frame, 2) == []


def test_chunking_does_not_change_the_result(operations: Contract) -> None:
    records = [op_record(i) for i in range(7)]
    records[2]["Extra"] = "x"
    records[5]["Sequence"] = [1]
    del records[6]["WorkOrderNId"]
    whole = land(operations, records)
    chunked = land(operations, iter(records), chunk_rows=2)
    assert whole.equals(chunked)
    assert [len(issues(chunked, i)) for i in range(7)] == [0, 0, 1, 0, 0, 1, 1]


def test_any_mapping_and_any_iterable_are_accepted(operations: Contract) -> None:
    frame = land(operations, (MappingProxyType(op_record(i)) for i in range(3)))
    assert frame["operation_id"].tolist() == ["OP-0", "OP-1", "OP-2"]


def test_no_records_give_an_empty_frame_with_every_column(operations: Contract) -> None:
    frame = land(operations, [])
    assert len(frame) == 0
    assert list(frame.columns) == operations.column_names + list(BOOKKEEPING)


def _with_fields(contract: Contract, fields: dict[str, str]) -> tuple[Contract, SourceMapping]:
    mapping = contract.sources["opcenter"].model_copy(update={"fields": fields})
    return contract.model_copy(update={"sources": {"opcenter": mapping}}), mapping


def test_unmapped_nullable_column_is_none_without_issue(operations: Contract) -> None:
    fields = {k: v for k, v in operations.sources["opcenter"].fields.items() if v != "operator_id"}
    contract, mapping = _with_fields(operations, fields)
    record = op_record(1)
    del record["OperatorNId"]
    frame = records_to_landed([record], contract, mapping, "x")
    assert frame["operator_id"].iloc[0] is None
    assert issues(frame, 0) == []


def test_unmapped_required_column_is_missing_on_every_row(operations: Contract) -> None:
    fields = {k: v for k, v in operations.sources["opcenter"].fields.items() if v != "status"}
    contract, mapping = _with_fields(operations, fields)
    record = op_record(1)
    del record["Status"]
    frame = records_to_landed([record, dict(record)], contract, mapping, "x")
    assert frame["status"].tolist() == [None, None]
    assert issues(frame, 0) == issues(frame, 1) == [Violation(column="status", rule="missing_field")]


def test_two_vendor_fields_for_one_column_are_refused(operations: Contract) -> None:
    fields = dict(operations.sources["opcenter"].fields) | {"OrderNo": "order_id"}
    contract, mapping = _with_fields(operations, fields)
    with pytest.raises(SourceError, match="order_id"):
        records_to_landed([op_record(1)], contract, mapping, "x")
