"""Contract -> GX suite: which expectations, their rule names, typed allowed sets, references, caching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from great_expectations.expectations import Expectation

from data_contracts.contract import Column, Contract, load_contracts
from data_contracts.gx_suite import (
    SuiteError,
    between_rule,
    build_suite,
    column_expectations,
    contract_suite,
)

CONTRACTS = load_contracts(Path(__file__).resolve().parents[2] / "data_contracts" / "contracts")


def gx_type(expectation: Expectation) -> str:
    """The GX core expectation an expectation of the suite is (contract suites use memoizing subclasses)."""
    core = next(c for c in type(expectation).__mro__ if c.__module__.startswith("great_expectations."))
    return core.expectation_type


def rules_of(contract: Contract) -> list[tuple[str, str, str]]:
    suite = build_suite(contract)
    return [(gx_type(e), e.meta["column"], e.meta["rule"]) for e in suite.expectations]


def test_every_shipped_contract_builds_a_suite_named_after_its_ref():
    for contract in CONTRACTS.values():
        suite = build_suite(contract)
        assert suite.name == f"contract:{contract.ref}"
        assert suite.expectations


def test_production_orders_rules():
    found = rules_of(CONTRACTS["production_orders"])
    assert ("expect_column_values_to_not_be_null", "order_id", "not_null") in found
    assert ("expect_column_values_to_not_be_null", "started_qty", "not_null") not in found  # nullable
    assert ("expect_column_values_to_be_between", "planned_qty", "between[1, 100000]") in found
    assert ("expect_column_values_to_be_in_set", "status", "in_set") in found
    assert ("expect_column_values_to_match_regex", "product_id", "match_regex") in found


def test_integer_allowed_set_is_compared_as_integers():
    (_, in_set) = column_expectations(CONTRACTS["ai4i_process_steps"].column("machine_failure"))
    assert in_set.value_set == [0, 1]


def test_references_are_a_suite_parameter():
    expectations = column_expectations(CONTRACTS["sensor_readings"].column("machine_id"))
    reference = [e for e in expectations if e.meta["rule"] == "references machines.machine_id"]
    assert reference[0].value_set == {"$PARAMETER": "ref_machines_machine_id"}


@pytest.mark.parametrize(
    ("column", "message"),
    [
        (Column(name="n", type="integer", description="d", pattern=r"^\d+$"), "column n: pattern"),
        (Column(name="s", type="string", description="d", min=0), "column s: min/max"),
        (Column(name="i", type="integer", description="d", allowed=["one"]), "column i: allowed"),
    ],
)
def test_rules_that_cannot_apply_to_the_column_type_are_errors(column, message):
    with pytest.raises(SuiteError, match=message):
        column_expectations(column)


def test_between_rule_names():
    assert (
        between_rule(Column(name="a", type="float", description="d", min=0, max=150.0)) == "between[0, 150]"
    )
    assert between_rule(Column(name="a", type="float", description="d", min=0.5)) == "at_least[0.5]"
    assert between_rule(Column(name="a", type="float", description="d", max=99)) == "at_most[99]"


def test_suite_is_cached_per_contract_content():
    contract = CONTRACTS["sensor_readings"]
    assert contract_suite(contract) is contract_suite(contract.model_copy())
    bumped = contract.model_copy(update={"version": "1.0.1"})
    assert contract_suite(bumped) is not contract_suite(contract)


def test_run_reports_failing_landing_rows_and_forgets_stored_results():
    contract = CONTRACTS["energy_readings"]
    typed = pd.DataFrame(
        {
            "_landing_row": [10, 11, 12],
            "meter_id": ["EM-L1", "EM-X", None],
            "line_id": ["L1", "L1", "L1"],
            "ts": pd.to_datetime(["2025-03-01", "2025-03-01", "2025-03-01"]),
            "kwh": [1.0, -2.0, 3.0],
        }
    )
    suite = contract_suite(contract)
    findings = {(f.column, f.rule): f.landing_rows.tolist() for f in suite.run(typed, {})}
    assert findings == {
        ("meter_id", "not_null"): [12],
        ("meter_id", "match_regex"): [11],
        ("kwh", "between[0, 10000]"): [11],
    }
    assert suite.context.validation_results_store.list_keys() == []


def test_missing_reference_values_are_an_error_naming_the_reference():
    typed = pd.DataFrame({"_landing_row": np.arange(1), "machine_id": ["M-01"]})
    with pytest.raises(SuiteError, match=r"references machines\.machine_id"):
        contract_suite(CONTRACTS["sensor_readings"]).run(typed, {})


def test_memoized_configuration_follows_a_changed_field():
    (_, between) = column_expectations(CONTRACTS["sensor_readings"].column("torque_nm"))
    first = between.configuration
    assert between.configuration is first  # built once: GX reads it ~130 times per run
    between.max_value = 99
    assert between.configuration.kwargs["max_value"] == 99
    assert gx_type(between) == "expect_column_values_to_be_between"


def test_reference_values_of_one_run_do_not_stick_to_the_next():
    contract = CONTRACTS["sensor_readings"]
    suite = contract_suite(contract)
    frame = pd.DataFrame({"_landing_row": [0, 1], "machine_id": ["M-01", "M-02"]})
    for column in contract.columns:
        if column.name not in frame:
            frame[column.name] = pd.Series([1.0, 1.0]) if column.type.value == "float" else pd.NaT
    frame["ts"] = pd.to_datetime(["2026-01-01", "2026-01-02"], utc=True)

    def unknown(known: set[str]) -> list[int]:
        findings = suite.run(frame, {"machines.machine_id": known})
        rows = [f.landing_rows for f in findings if f.rule.startswith("references")]
        return sorted(int(r) for block in rows for r in block)

    assert unknown({"M-01"}) == [1]
    assert unknown({"M-02"}) == [0]  # the second run judges against its own references
    assert unknown({"M-01", "M-02"}) == []
