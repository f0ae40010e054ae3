"""A contract's column rules as a Great Expectations suite, built once per contract and run on typed frames.

Each column rule becomes one GX expectation whose ``meta`` names the contract column and the violation rule it
reports (``not_null``, ``between[0, 150]``, ``in_set``, ``match_regex``, ``references machines.machine_id``).
The GX objects (ephemeral context, pandas data source, dataframe asset, whole-dataframe batch definition,
suite, validation definition) are built once per contract and cached: GX setup is slow.

Speed: the suite runs at result format COMPLETE with ``unexpected_index_column_names=["_landing_row"]`` but
asks GX only for the failing row ids (``exclude_unexpected_values``, no index query, no partial lists): the
observed values are read back from the landed text, which is what quarantine reports anyway. That keeps GX's
per-row python work proportional to the failing rows instead of to the frame.

GX is imported lazily (inside the functions that build GX objects): importing it takes seconds, and modules
that only need a contract's rule names should not pay for it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from data_contracts.coercion import coerce_column, typed_literal
from data_contracts.contract import Column, ColumnType, Contract
from data_contracts.landed import LANDING_ROW

if TYPE_CHECKING:
    import great_expectations as gx
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.expectations import Expectation

RESULT_FORMAT: dict[str, Any] = {
    "result_format": "COMPLETE",
    "unexpected_index_column_names": [LANDING_ROW],
    "exclude_unexpected_values": True,
    "return_unexpected_index_query": False,
    "partial_unexpected_count": 0,
}
NUMERIC = (ColumnType.INTEGER, ColumnType.FLOAT)


class SuiteError(ValueError):
    """A contract rule that cannot become an expectation, or a GX run that failed: names column and rule."""


@dataclass(frozen=True)
class ColumnFinding:
    """The rows (by ``_landing_row``) where one column expectation failed."""

    column: str
    rule: str
    landing_rows: np.ndarray


def suite_name(contract: Contract) -> str:
    """The GX suite name: it carries the contract ref so results say which contract version judged them."""
    return f"contract:{contract.ref}"


def number_text(value: float) -> str:
    """150.0 -> '150', 0.5 -> '0.5': bounds read in rule names as the contract wrote them."""
    return f"{value:g}"


def between_rule(column: Column) -> str:
    """Rule name of a min/max check: 'between[0, 150]', 'at_least[1]' or 'at_most[99]'."""
    if column.min is not None and column.max is not None:
        return f"between[{number_text(column.min)}, {number_text(column.max)}]"
    if column.min is not None:
        return f"at_least[{number_text(column.min)}]"
    return f"at_most[{number_text(column.max)}]"  # type: ignore[arg-type]


def references_rule(column: Column) -> str:
    """Rule name of a foreign-key check: 'references machines.machine_id'."""
    return f"references {column.references}"


def reference_parameter(reference: str) -> str:
    """The GX suite parameter holding the known values of a reference ('machines.machine_id')."""
    return "ref_" + re.sub(r"\W", "_", reference)


def allowed_values(column: Column) -> list[object]:
    """The column's allowed list in its typed form, so ['0', '1'] on an integer column compares as 0 and 1."""
    assert column.allowed is not None
    typed = []
    for value in column.allowed:
        try:
            typed.append(typed_literal(value, column.type))
        except ValueError as err:
            raise SuiteError(f"column {column.name}: allowed: {err}") from None
    return typed


def reference_values(column: Column, known: set[str]) -> list[object]:
    """Known reference values in the column's typed form; values that cannot be of that type never match."""
    if column.type == ColumnType.STRING:
        return sorted(known)
    coerced = coerce_column(pd.Series(sorted(known), dtype=object), column.type)
    return [v.item() if isinstance(v, np.generic) else v for v in coerced.values.dropna()]


def require_references(
    contract_ref: str, columns: Iterable[Column], references: Mapping[str, set[str]]
) -> None:
    """Raise SuiteError naming the first column whose reference has no known values in ``references``."""
    for column in columns:
        if column.references is not None and column.references not in references:
            raise SuiteError(
                f"{contract_ref}: column {column.name} references {column.references}: no known values "
                f"given (pass references[{column.references!r}])"
            )


def column_expectations(column: Column) -> list[Expectation]:
    """The GX expectations of one column, each tagged with the column and the violation rule it reports."""
    from data_contracts import gx_expectations as gxe

    def meta(rule: str) -> dict[str, str]:
        return {"column": column.name, "rule": rule}

    found: list[Expectation] = []
    if not column.nullable:
        found.append(gxe.ExpectContractColumnValuesToNotBeNull(column=column.name, meta=meta("not_null")))
    if column.min is not None or column.max is not None:
        if column.type not in NUMERIC:
            raise SuiteError(f"column {column.name}: min/max: needs an integer or float column")
        found.append(
            gxe.ExpectContractColumnValuesToBeBetween(
                column=column.name,
                min_value=column.min,
                max_value=column.max,
                meta=meta(between_rule(column)),
            )
        )
    if column.allowed is not None:
        found.append(
            gxe.ExpectContractColumnValuesToBeInSet(
                column=column.name, value_set=allowed_values(column), meta=meta("in_set")
            )
        )
    if column.pattern is not None:
        if column.type != ColumnType.STRING:
            raise SuiteError(f"column {column.name}: pattern: needs a string column")
        found.append(
            gxe.ExpectContractColumnValuesToMatchRegex(
                column=column.name, regex=column.pattern, meta=meta("match_regex")
            )
        )
    if column.references is not None:
        parameter = {"$PARAMETER": reference_parameter(column.references)}
        found.append(
            gxe.ExpectContractColumnValuesToBeInSet(
                column=column.name, value_set=parameter, meta=meta(references_rule(column))
            )
        )
    return found


def build_suite(contract: Contract) -> ExpectationSuite:
    """The contract's column rules as a GX ExpectationSuite named after the contract ref."""
    import great_expectations as gx

    expectations = [e for column in contract.columns for e in column_expectations(column)]
    return gx.ExpectationSuite(name=suite_name(contract), expectations=expectations)


def suite_columns(contract: Contract) -> list[str]:
    """The contract columns the suite reads (the GX frame carries only these plus ``_landing_row``)."""
    return [c.name for c in contract.columns if column_expectations(c)]


class ContractSuite:
    """A contract's GX objects, built once: run the suite on a typed frame and get failing rows per rule."""

    def __init__(self, contract: Contract) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.contract_ref = contract.ref
        self.columns = suite_columns(contract)
        self.references = {c.name: c for c in contract.columns if c.references is not None}
        self.context = gx.get_context(mode="ephemeral")
        # tqdm bars on every run would flood Dagster logs and the CLI.
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        batch = (
            self.context.data_sources.add_pandas("mesops")
            .add_dataframe_asset(contract.name)
            .add_batch_definition_whole_dataframe("whole")
        )
        self.suite = self.context.suites.add(build_suite(contract))
        self.validation: gx.ValidationDefinition = self.context.validation_definitions.add(
            gx.ValidationDefinition(name=f"validate:{contract.ref}", data=batch, suite=self.suite)
        )
        self._lock = threading.Lock()  # a GX context is not safe to run from two threads at once

    def parameters(self, references: Mapping[str, set[str]]) -> dict[str, list[object]]:
        """Suite parameters for the references; a reference without known values is an error, not a skip."""
        require_references(self.contract_ref, self.references.values(), references)
        return {
            reference_parameter(c.references): reference_values(c, set(references[c.references]))
            for c in self.references.values()
            if c.references is not None
        }

    def run(self, typed: pd.DataFrame, references: Mapping[str, set[str]]) -> list[ColumnFinding]:
        """Validate a typed frame (suite columns + ``_landing_row``); one finding per failing expectation."""
        params = self.parameters(references)
        frame = gx_frame(typed[[LANDING_ROW, *self.columns]])
        if frame.empty or not self.columns:
            return []
        from great_expectations.validator.v1_validator import Validator

        with self._lock:
            # What ValidationDefinition.run does minus storing and serializing the result (we hold it
            # ourselves): the same batch definition, suite and result format through GX's validator.
            validator = Validator(
                batch_definition=self.validation.batch_definition,
                batch_parameters={"dataframe": frame},
                result_format=RESULT_FORMAT,
            )
            result = validator.validate_expectation_suite(self.suite, params)
            self._forget_stored_results()
        return [finding for r in result.results if (finding := self._finding(r)) is not None]

    def _finding(self, result: Any) -> ColumnFinding | None:
        config = result.expectation_config
        column, rule = config.meta["column"], config.meta["rule"]
        if result.exception_info and result.exception_info.get("raised_exception"):
            raise SuiteError(
                f"{self.contract_ref}: column {column}: rule {rule}: GX failed: "
                f"{result.exception_info.get('exception_message')}"
            )
        if result.success:
            return None
        rows = landing_rows(result.result.get("unexpected_index_list") or [])
        return ColumnFinding(column=column, rule=rule, landing_rows=rows)

    def _forget_stored_results(self) -> None:
        # ValidationDefinition.run keeps every result in the ephemeral context's in-memory store; we hold the
        # result ourselves, so drop it there or a long-lived cached suite grows with every batch.
        store = self.context.validation_results_store
        for key in store.list_keys():
            store.remove_key(key)


def gx_frame(typed: pd.DataFrame) -> pd.DataFrame:
    """The typed columns in dtypes GX compares vectorized: nullable Int64 as float64 (exact below 2**53).

    GX's between check runs a python function per value on extension dtypes such as Int64 (seconds per
    million rows) and vectorized numpy comparisons on float64.
    """
    integers = [name for name, dtype in typed.dtypes.items() if isinstance(dtype, pd.Int64Dtype)]
    if not integers:
        return typed
    return typed.astype(dict.fromkeys(integers, "float64"))


def landing_rows(unexpected_index_list: list[dict[str, Any]]) -> np.ndarray:
    """``_landing_row`` ids from GX's unexpected_index_list (one dict of lists, or one dict per row)."""
    ids: list[Any] = []
    for entry in unexpected_index_list:
        value = entry[LANDING_ROW]
        if isinstance(value, list):
            ids.extend(value)
        else:
            ids.append(value)
    return np.asarray(ids, dtype=np.int64)


def contract_suite(contract: Contract) -> ContractSuite:
    """The cached GX objects of a contract (built on first use; a changed contract gets its own)."""
    return _cached_suite(contract.model_dump_json())


@lru_cache(maxsize=64)
def _cached_suite(contract_json: str) -> ContractSuite:
    return ContractSuite(Contract.model_validate_json(contract_json))
