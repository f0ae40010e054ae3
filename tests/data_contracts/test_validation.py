"""validate(): type failures, GX column rules, row rules, duplicates, adapter issues and the valid/quarantine split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data_contracts.contract import Column, Contract, RowRule, load_contracts
from data_contracts.gx_suite import SuiteError
from data_contracts.landed import ISSUES, LANDING_ROW, SOURCE, Violation, issues_from_json, issues_to_json
from data_contracts.validation import (
    REASONS,
    LandedFrameError,
    RowAccountingError,
    ValidationResult,
    validate,
)

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())
DATASETS = REPO.parent / "shared" / "datasets"
CONTRACTS = load_contracts(REPO / "data_contracts" / "contracts")
MACHINES = {"machines.machine_id": {"M-01", "M-02"}}

WIDGETS = Contract(
    name="widgets",
    version="1.0.0",
    description="A small table exercising every rule kind.",
    primary_key=["widget_id"],
    columns=[
        Column(name="widget_id", type="string", description="id", pattern=r"^W-\d{3}$"),
        Column(name="machine_id", type="string", description="machine", references="machines.machine_id"),
        Column(name="kind", type="string", description="kind", allowed=["a", "b"]),
        Column(name="qty_in", type="integer", description="in", min=0, max=100),
        Column(name="qty_good", type="integer", description="good", nullable=True, min=0),
        Column(name="flag", type="integer", description="flag", nullable=True, allowed=["0", "1"]),
        Column(name="weight", type="float", description="weight", nullable=True, max=10),
        Column(name="started_at", type="timestamp", description="start"),
        Column(name="ended_at", type="timestamp", description="end", nullable=True),
        Column(name="made_on", type="date", description="date", nullable=True),
        Column(name="serial", type="string", description="serial", nullable=True, unique=True),
    ],
    rules=[
        RowRule(name="good_within_in", expression="qty_good <= qty_in", description="good <= in"),
        RowRule(name="end_after_start", expression="ended_at >= started_at", description="end >= start"),
    ],
)


def good_row(i: int, **changes: str | None) -> dict[str, str | None]:
    row: dict[str, str | None] = {
        "widget_id": f"W-{i:03d}",
        "machine_id": "M-01",
        "kind": "a",
        "qty_in": "50",
        "qty_good": "40",
        "flag": "1",
        "weight": "2.5",
        "started_at": "2025-03-01T06:00:00",
        "ended_at": "2025-03-01T07:00:00",
        "made_on": "2025-03-01",
        "serial": f"S{i}",
    }
    row.update(changes)
    return row


def landed(
    rows: list[dict[str, str | None]], issues: dict[int, list[Violation]] | None = None
) -> pd.DataFrame:
    frame = pd.DataFrame(rows, dtype=object)
    frame[LANDING_ROW] = np.arange(len(frame), dtype=np.int64)
    frame[SOURCE] = "file:widgets.csv"
    frame[ISSUES] = [issues_to_json(issues[i]) if issues and i in issues else None for i in range(len(frame))]
    return frame


def run(rows, issues=None, references=MACHINES) -> ValidationResult:
    return validate(landed(rows, issues), WIDGETS, references=references)


def reasons(result: ValidationResult, landing_row: int) -> list[Violation]:
    row = result.quarantined.loc[result.quarantined[LANDING_ROW] == landing_row, REASONS]
    assert len(row) == 1, f"row {landing_row} is not quarantined"
    return issues_from_json(row.iloc[0])


def test_clean_rows_are_all_valid_and_typed():
    result = run([good_row(1), good_row(2, qty_good=None, ended_at=None, flag=None, weight=None)])
    assert (result.valid_count, result.quarantined_count) == (2, 0)
    dtypes = result.valid.dtypes.astype(str).to_dict()
    assert dtypes["qty_in"] == "Int64" and dtypes["weight"] == "float64"
    assert dtypes["started_at"] == "datetime64[ns]" and dtypes["made_on"] == "datetime64[ns]"
    assert list(result.valid.columns) == [*WIDGETS.column_names, LANDING_ROW, SOURCE]
    assert result.valid[SOURCE].tolist() == ["file:widgets.csv"] * 2


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"qty_in": "12.5"}, Violation(column="qty_in", rule="type:integer", observed="12.5")),
        ({"qty_in": "many"}, Violation(column="qty_in", rule="type:integer", observed="many")),
        ({"weight": "heavy"}, Violation(column="weight", rule="type:float", observed="heavy")),
        (
            {"started_at": "yesterday"},
            Violation(column="started_at", rule="type:timestamp", observed="yesterday"),
        ),
        ({"made_on": "2025-13-01"}, Violation(column="made_on", rule="type:date", observed="2025-13-01")),
        ({"kind": None}, Violation(column="kind", rule="not_null", observed=None)),
        ({"qty_in": "101"}, Violation(column="qty_in", rule="between[0, 100]", observed="101")),
        ({"qty_good": "-1"}, Violation(column="qty_good", rule="at_least[0]", observed="-1")),
        ({"weight": "10.5"}, Violation(column="weight", rule="at_most[10]", observed="10.5")),
        ({"kind": "c"}, Violation(column="kind", rule="in_set", observed="c")),
        ({"flag": "2"}, Violation(column="flag", rule="in_set", observed="2")),
        ({"widget_id": "X-1"}, Violation(column="widget_id", rule="match_regex", observed="X-1")),
        (
            {"machine_id": "M-99"},
            Violation(column="machine_id", rule="references machines.machine_id", observed="M-99"),
        ),
        (
            {"qty_good": "60"},
            Violation(column=None, rule="good_within_in", observed="qty_good=60, qty_in=50"),
        ),
        (
            {"ended_at": "2025-03-01T05:00:00"},
            Violation(
                column=None,
                rule="end_after_start",
                observed="ended_at=2025-03-01T05:00:00, started_at=2025-03-01T06:00:00",
            ),
        ),
    ],
)
def test_each_rule_kind_quarantines_the_row_with_one_reason(changes, expected):
    result = run([good_row(1), good_row(2, **changes)])
    assert result.valid[LANDING_ROW].tolist() == [0]
    assert reasons(result, 1) == [expected]


def test_integer_allowed_set_accepts_integral_text():
    assert run([good_row(1, flag="1.0"), good_row(2, flag="0")]).quarantined_count == 0


def test_a_value_failing_its_type_is_not_judged_again():
    # "-5x" is not an integer: no not_null, no range check and no row rule on top of the type failure.
    result = run([good_row(1, qty_in="-5x", qty_good="90")])
    assert reasons(result, 0) == [Violation(column="qty_in", rule="type:integer", observed="-5x")]


def test_row_rules_do_not_judge_rows_with_nulls():
    result = run([good_row(1, qty_good=None), good_row(2, ended_at=None, started_at="2025-03-02T00:00:00")])
    assert result.quarantined_count == 0


def test_duplicates_keep_the_first_in_landing_order():
    rows = [
        good_row(1),
        good_row(2),
        good_row(1, serial="S9"),
        good_row(3, serial="S2"),
        good_row(4, serial=None),
    ]
    rows.append(good_row(5, serial=None))
    frame = landed(rows).iloc[::-1]  # frame order must not matter: _landing_row decides who came first
    result = validate(frame, WIDGETS, references=MACHINES)
    assert sorted(result.quarantined[LANDING_ROW]) == [2, 3]
    assert reasons(result, 2) == [Violation(column="widget_id", rule="duplicate_key", observed="W-001")]
    assert reasons(result, 3) == [Violation(column="serial", rule="duplicate_key", observed="S2")]
    assert result.valid[LANDING_ROW].tolist() == [0, 1, 4, 5]  # null serials are not duplicates


def test_composite_key_duplicates_name_every_key_column():
    contract = CONTRACTS["sensor_readings"]
    row = {c: "300" for c in contract.column_names} | {"machine_id": "M-01", "ts": "2025-03-01T06:00:00"}
    row |= {"process_temp_k": "310", "speed_rpm": "1500", "torque_nm": "40", "vibration_mm_s": "2"}
    frame = pd.DataFrame([row, row | {"ts": "2025-03-01T06:00:30"}, row], dtype=object)
    frame[LANDING_ROW], frame[SOURCE], frame[ISSUES] = range(3), "s", None
    result = validate(frame, contract, references=MACHINES)
    assert result.quarantined[LANDING_ROW].tolist() == [2]
    assert reasons(result, 2) == [
        Violation(column="machine_id,ts", rule="duplicate_key", observed="M-01, 2025-03-01T06:00:00")
    ]


def test_adapter_issues_are_merged_first():
    issue = Violation(column="colour", rule="unknown_field", observed="red")
    result = run([good_row(1), good_row(2, kind="z")], issues={1: [issue], 0: []})
    assert result.valid[LANDING_ROW].tolist() == [0]
    assert reasons(result, 1) == [issue, Violation(column="kind", rule="in_set", observed="z")]


def test_missing_reference_values_are_an_error():
    with pytest.raises(SuiteError, match=r"machine_id references machines\.machine_id"):
        run([good_row(1)], references={})


def test_counts_and_identity_over_many_defects():
    rows = [good_row(i) for i in range(10)]
    rows[1]["kind"] = "c"
    rows[2]["qty_in"] = "x"
    rows[3]["kind"], rows[3]["qty_in"] = "c", "200"
    rows[4]["widget_id"] = "W-000"  # duplicate of row 0
    result = run(rows)
    assert result.landed == result.valid_count + result.quarantined_count == 10
    assert result.quarantined_count == 4
    assert result.counts_by_reason == {
        "in_set": 2,
        "type:integer": 1,
        "between[0, 100]": 1,
        "duplicate_key": 1,
    }
    assert result.counts_by_column_rule[("kind", "in_set")] == 2
    assert result.counts_by_column_rule[("widget_id", "duplicate_key")] == 1
    summary = json.loads(json.dumps(result.summary()))
    assert summary["by_rule"]["in_set"] == 2 and summary["by_column_rule"]["qty_in"]["type:integer"] == 1


def test_quarantine_keeps_the_original_text_of_every_column():
    rows = [good_row(1, qty_in="12.50", weight="1e1", started_at="2025-03-01 06:00:00", kind="q")]
    result = run(rows)
    assert result.valid.empty
    quarantined = result.quarantined.iloc[0]
    assert list(result.quarantined.columns) == [*WIDGETS.column_names, LANDING_ROW, SOURCE, REASONS]
    assert {c: quarantined[c] for c in WIDGETS.column_names} == rows[0]
    assert quarantined[SOURCE] == "file:widgets.csv"
    assert all(isinstance(v, Violation) for v in issues_from_json(quarantined[REASONS]))


def test_timestamp_format_is_applied():
    rows = [good_row(1, started_at="01/03/2025 06:00", ended_at="01/03/2025 07:00")]
    result = validate(landed(rows), WIDGETS, references=MACHINES, timestamp_format="%d/%m/%Y %H:%M")
    assert result.valid["started_at"].iloc[0] == pd.Timestamp("2025-03-01 06:00")


def test_empty_landed_frame():
    frame = landed([good_row(1)]).iloc[:0]
    result = validate(frame, WIDGETS, references=MACHINES)
    assert (result.landed, result.valid_count, result.quarantined_count) == (0, 0, 0)


def test_landed_frame_must_follow_the_convention():
    with pytest.raises(LandedFrameError, match="lacks column"):
        validate(landed([good_row(1)]).drop(columns=["kind"]), WIDGETS, references=MACHINES)
    repeated = landed([good_row(1), good_row(2)]).assign(_landing_row=[0, 0])
    with pytest.raises(LandedFrameError, match="unique"):
        validate(repeated, WIDGETS, references=MACHINES)


def test_result_refuses_counts_that_do_not_add_up():
    with pytest.raises(RowAccountingError):
        ValidationResult("t@1.0.0", 3, 1, 1, {}, {}, pd.DataFrame(index=[0]), pd.DataFrame(index=[0]))


# --- the public datasets, through the contract's file mapping -------------------------------------------


def dataset_landed(contract: Contract, file_name: str) -> pd.DataFrame:
    path = DATASETS / file_name
    if not path.exists():
        pytest.skip(f"dataset {path} is missing")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame = raw.replace("", None).rename(columns=contract.sources["file"].fields)
    frame[LANDING_ROW] = np.arange(len(frame), dtype=np.int64)
    frame[SOURCE] = f"file:{file_name}"
    frame[ISSUES] = None
    return frame


def plant(frame: pd.DataFrame, defects: dict[int, tuple[dict[str, str | None], str]]) -> pd.DataFrame:
    planted = frame.copy()
    for row, (changes, _) in defects.items():
        for column, value in changes.items():
            planted.loc[row, column] = value
    return planted


AI4I_DEFECTS: dict[int, tuple[dict[str, str | None], str]] = {
    10: ({"torque_nm": "151.2"}, "between[0, 150]"),
    200: ({"torque_nm": "-1"}, "between[0, 150]"),
    3000: ({"torque_nm": "999"}, "between[0, 150]"),
    11: ({"speed_rpm": "fast"}, "type:float"),
    777: ({"speed_rpm": "1,500"}, "type:float"),
    5000: ({"udi": "5001a"}, "type:integer"),
    61: ({"twf": "0.5"}, "type:integer"),
    9000: ({"udi": "101"}, "duplicate_key"),  # row 100 keeps UDI 101
    9001: ({"udi": "102"}, "duplicate_key"),
    20: ({"product_type": "X"}, "in_set"),
    6000: ({"product_type": "low"}, "in_set"),
    60: ({"machine_failure": "2"}, "in_set"),
    30: ({"product_id": None}, "not_null"),
    7000: ({"product_id": None}, "not_null"),
    8000: ({"air_temp_k": None}, "not_null"),
    40: ({"product_id": "Q12345"}, "match_regex"),
    50: ({"air_temp_k": "310", "process_temp_k": "300"}, "process_hotter_than_air"),
    70: ({"air_temp_k": "269.9"}, "between[270, 330]"),
    4500: ({"tool_wear_min": "1001"}, "between[0, 1000]"),
    9999: ({"product_type": None}, "not_null"),
}

STEEL_DEFECTS: dict[int, tuple[dict[str, str | None], str]] = {
    5: ({"ts": "2018-01-01T01:30:00"}, "type:timestamp"),  # ISO text where the source declares dd/mm/YYYY
    100: ({"ts": "01/01/2018 01:00"}, "duplicate_key"),  # row 3 is 01:00
    200: ({"usage_kwh": "-3"}, "between[0, 10000]"),
    300: ({"nsm": "900.5"}, "type:integer"),
    301: ({"nsm": "90000"}, "between[0, 86399]"),
    400: ({"week_status": "Holiday"}, "in_set"),
    500: ({"load_type": None}, "not_null"),
    600: ({"lagging_power_factor": "101"}, "between[0, 100]"),
    700: ({"day_of_week": "Mon"}, "in_set"),
    800: ({"co2_t": "n/a"}, "type:float"),
}


@pytest.mark.parametrize(
    ("table", "file_name", "defects"),
    [
        ("ai4i_process_steps", "ai4i2020.csv", AI4I_DEFECTS),
        ("steel_energy", "steel_industry_energy.csv", STEEL_DEFECTS),
    ],
)
def test_public_dataset_is_clean_and_planted_defects_are_exactly_quarantined(table, file_name, defects):
    contract = CONTRACTS[table]
    frame = dataset_landed(contract, file_name)
    timestamp_format = contract.sources["file"].timestamp_format
    clean = validate(frame, contract, timestamp_format=timestamp_format)
    assert (clean.valid_count, clean.quarantined_count) == (len(frame), 0)

    result = validate(plant(frame, defects), contract, timestamp_format=timestamp_format)
    assert sorted(result.quarantined[LANDING_ROW]) == sorted(defects)
    for row, (_, rule) in defects.items():
        assert [v.rule for v in reasons(result, row)] == [rule], row
    assert result.valid_count == len(frame) - len(defects)
