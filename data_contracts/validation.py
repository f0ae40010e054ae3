"""Validate a landed table against its contract: typed valid rows on one side, quarantined rows with reasons.

Steps, each vectorized over the whole frame:

1. Type coercion (:mod:`data_contracts.coercion`): a present value that does not fit its column type is a
   ``type:<type>`` violation. Its typed cell becomes null and no later step judges that cell again.
2. Column rules by Great Expectations (:mod:`data_contracts.gx_suite`): not_null, min/max, allowed set, pattern
   and references, reported per row through ``_landing_row``.
3. Row rules (``contract.rules``) by pandas ``DataFrame.eval`` on the typed columns. GX 1.x has a pair
   expectation for ``a >= b`` but nothing for expressions such as ``good_qty + scrap_qty <= started_qty``
   on pandas, so every row rule takes the one pandas path. Rows with a null in a column of the rule are not
   judged by it (nullability is its own rule).
4. Uniqueness of the primary key and of each unique column, on typed values in ``_landing_row`` order: the
   first occurrence is valid, every later copy is a ``duplicate_key`` violation. Keys with a null are not
   judged.
5. The adapter's ``_issues`` are merged into the reasons.

A row with at least one violation is quarantined with the original text of every column, ``_landing_row``,
``_source`` and ``_reasons`` (a JSON list of :class:`~data_contracts.landed.Violation`, in step order). The
adapter's ``_issues`` are not kept as a column: they are part of ``_reasons``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from data_contracts.coercion import as_text, coerce_column
from data_contracts.contract import Contract, RowRule
from data_contracts.gx_suite import contract_suite, require_references
from data_contracts.landed import BOOKKEEPING, ISSUES, LANDING_ROW, SOURCE, issues_from_json

REASONS = "_reasons"
DUPLICATE_KEY = "duplicate_key"
ROW = "(row)"  # the column label of whole-row rules in summaries


class LandedFrameError(ValueError):
    """A landed frame that does not follow the landed convention (missing columns, repeated row ids)."""


class RowAccountingError(RuntimeError):
    """landed != valid + quarantined: a row was lost or doubled, which must never be written out."""


@dataclass(frozen=True, eq=False)
class ValidationResult:
    """The outcome of validating one landed table: counts, reasons, typed valid rows and quarantined rows."""

    contract_ref: str
    landed: int
    valid_count: int
    quarantined_count: int
    counts_by_reason: dict[str, int]
    counts_by_column_rule: dict[tuple[str | None, str], int]
    valid: pd.DataFrame
    quarantined: pd.DataFrame

    def __post_init__(self) -> None:
        if self.landed != self.valid_count + self.quarantined_count:
            raise RowAccountingError(
                f"{self.contract_ref}: landed {self.landed} != valid {self.valid_count} "
                f"+ quarantined {self.quarantined_count}"
            )
        if len(self.valid) != self.valid_count or len(self.quarantined) != self.quarantined_count:
            raise RowAccountingError(
                f"{self.contract_ref}: frames hold {len(self.valid)} valid and {len(self.quarantined)} "
                f"quarantined rows, counts say {self.valid_count} and {self.quarantined_count}"
            )

    def summary(self) -> dict[str, Any]:
        """A JSON-ready dict for Dagster metadata and the CLI: counts, rows per rule, rows per column and rule."""
        by_column: dict[str, dict[str, int]] = {}
        for (column, rule), rows in sorted(self.counts_by_column_rule.items(), key=lambda kv: str(kv[0])):
            by_column.setdefault(column or ROW, {})[rule] = rows
        return {
            "contract": self.contract_ref,
            "landed": self.landed,
            "valid": self.valid_count,
            "quarantined": self.quarantined_count,
            "by_rule": dict(sorted(self.counts_by_reason.items())),
            "by_column_rule": by_column,
        }


@dataclass
class Findings:
    """Violations collected as blocks (one rule, many rows) so nothing is built per row until the split."""

    rows: int
    positions: list[np.ndarray] = field(default_factory=list)
    columns: list[str | None] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    observed: list[np.ndarray] = field(default_factory=list)

    def add(self, positions: np.ndarray, column: str | None, rule: str, observed: np.ndarray) -> None:
        """Record that ``rule`` failed on the rows at ``positions``, with the value seen in each."""
        if len(positions):
            self.positions.append(np.asarray(positions, dtype=np.int64))
            self.columns.append(column)
            self.rules.append(rule)
            self.observed.append(np.asarray(observed, dtype=object))

    def flagged(self) -> np.ndarray:
        """Boolean mask of rows with at least one violation."""
        mask = np.zeros(self.rows, dtype=bool)
        for positions in self.positions:
            mask[positions] = True
        return mask

    def long_form(self) -> pd.DataFrame:
        """One line per violation: position, block order, column, rule, observed; sorted by row then step."""
        if not self.positions:
            return pd.DataFrame({"pos": [], "block": [], "column": [], "rule": [], "observed": []})
        sizes = [len(p) for p in self.positions]
        frame = pd.DataFrame(
            {
                "pos": np.concatenate(self.positions),
                "block": np.repeat(np.arange(len(sizes)), sizes),
                "column": np.repeat(np.array(self.columns, dtype=object), sizes),
                "rule": np.repeat(np.array(self.rules, dtype=object), sizes),
                "observed": np.concatenate(self.observed),
            }
        )
        return frame.sort_values(["pos", "block"], kind="stable").reset_index(drop=True)


def validate(
    landed: pd.DataFrame,
    contract: Contract,
    references: Mapping[str, set[str]] | None = None,
    timestamp_format: str | None = None,
    source_table: pa.Table | None = None,
) -> ValidationResult:
    """Split a landed frame into typed valid rows and quarantined rows (original text + ``_reasons``).

    Args:
        landed: contract columns as text/None plus ``_landing_row``, ``_source`` and ``_issues``.
        contract: the table's contract.
        references: "table.column" -> known values, for every column with ``references``; a missing entry
            is an error (never silently skipped).
        timestamp_format: strftime format of the source's timestamps (``SourceMapping.timestamp_format``);
            None for ISO 8601.
        source_table: the Arrow table ``landed`` was converted from (``to_frame``), if at hand: its text
            columns are parsed as they are instead of converting the frame's Python strings back.
    """
    references = references or {}
    require_references(contract.ref, contract.columns, references)
    frame = in_landing_order(check_landed(landed, contract))
    landing = frame[LANDING_ROW].to_numpy(dtype=np.int64)
    findings = Findings(rows=len(frame))
    # the table's rows are the frame's only when sorting left the frame as it was
    sources = source_columns(source_table, frame) if frame is landed else {}

    add_adapter_issues(frame[ISSUES], findings)
    typed, text, type_failed = coerce_all(contract, frame, timestamp_format, findings, sources)
    typed.insert(0, LANDING_ROW, landing)
    if len(frame):
        add_column_rules(contract, typed, text, type_failed, references, findings)
    add_row_rules(contract, typed, text, findings)
    add_duplicates(contract, typed, text, findings)

    typed[SOURCE] = frame[SOURCE].to_numpy()
    return split(contract, typed, text, frame, findings)


def check_landed(landed: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """The landed frame if it follows the convention; LandedFrameError naming what is missing or extra."""
    expected = [*contract.column_names, *BOOKKEEPING]
    missing = [c for c in expected if c not in landed.columns]
    if missing:
        raise LandedFrameError(f"{contract.ref}: landed frame lacks column(s) {missing}")
    extra = [c for c in landed.columns if c not in expected]
    if extra:
        raise LandedFrameError(
            f"{contract.ref}: landed frame has column(s) {extra} that the contract does not name"
        )
    if landed[LANDING_ROW].isna().any() or not landed[LANDING_ROW].is_unique:
        raise LandedFrameError(f"{contract.ref}: {LANDING_ROW} must be present and unique in a landed frame")
    return landed


def in_landing_order(landed: pd.DataFrame) -> pd.DataFrame:
    """The frame sorted by ``_landing_row`` with a 0..n-1 index (keep-first duplicates follow source order)."""
    if not landed[LANDING_ROW].is_monotonic_increasing:
        landed = landed.sort_values(LANDING_ROW, kind="stable")
    if landed.index.equals(pd.RangeIndex(len(landed))):
        return landed  # already positional: skip reset_index, which copies every column
    return landed.reset_index(drop=True)


def add_adapter_issues(issues: pd.Series, findings: Findings) -> None:
    """Merge the adapter's per-row ``_issues`` JSON lists into the findings (only rows that have any)."""
    text = as_text(issues)
    carrying = np.flatnonzero((text.notna() & ~text.isin(["", "[]"])).to_numpy())
    blocks: dict[tuple[str | None, str], tuple[list[int], list[str | None]]] = {}
    for pos in carrying:
        try:
            violations = issues_from_json(text.iat[pos])
        except ValueError as err:  # json.JSONDecodeError and pydantic's ValidationError are both ValueErrors
            raise LandedFrameError(f"row {pos}: {ISSUES}: not a JSON list of violations: {err}") from None
        for violation in violations:
            rows, seen = blocks.setdefault((violation.column, violation.rule), ([], []))
            rows.append(int(pos))
            seen.append(violation.observed)
    for (column, rule), (rows, seen) in blocks.items():
        findings.add(np.array(rows), column, rule, np.array(seen, dtype=object))


def source_columns(table: pa.Table | None, frame: pd.DataFrame) -> dict[str, pa.Array]:
    """The table's text columns by name, when the table is the one ``frame`` was converted from."""
    if table is None or table.num_rows != len(frame) or table.column_names != [str(c) for c in frame.columns]:
        return {}
    return {
        name: column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
        for name, column in zip(table.column_names, table.columns, strict=True)
        if pa.types.is_string(column.type)
    }


def coerce_all(
    contract: Contract,
    frame: pd.DataFrame,
    timestamp_format: str | None,
    findings: Findings,
    sources: Mapping[str, pa.Array] | None = None,
) -> tuple[pd.DataFrame, dict[str, pd.Series], dict[str, np.ndarray]]:
    """Typed contract columns, their original text, and per column the mask of values that failed their type.

    ``sources``: column -> the Arrow text the frame's column was converted from (saves converting it back).
    """
    typed: dict[str, pd.Series] = {}
    text: dict[str, pd.Series] = {}
    failed: dict[str, np.ndarray] = {}
    sources = sources or {}
    for column in contract.columns:
        coerced = coerce_column(frame[column.name], column.type, timestamp_format, sources.get(column.name))
        typed[column.name], text[column.name], failed[column.name] = (
            coerced.values,
            coerced.text,
            coerced.failed,
        )
        positions = np.flatnonzero(coerced.failed)
        findings.add(positions, column.name, f"type:{column.type.value}", coerced.text.to_numpy()[positions])
    return pd.DataFrame(typed), text, failed


def add_column_rules(
    contract: Contract,
    typed: pd.DataFrame,
    text: dict[str, pd.Series],
    type_failed: dict[str, np.ndarray],
    references: Mapping[str, set[str]],
    findings: Findings,
) -> None:
    """Run the contract's GX suite; cells that already failed their type are not reported again."""
    landing = typed[LANDING_ROW].to_numpy()
    for finding in contract_suite(contract).run(typed, references):
        positions = positions_of(landing, finding.landing_rows)
        positions = positions[~type_failed[finding.column][positions]]
        findings.add(positions, finding.column, finding.rule, text[finding.column].to_numpy()[positions])


def positions_of(landing: np.ndarray, landing_rows: np.ndarray) -> np.ndarray:
    """Frame positions of ``_landing_row`` ids (identity when the ids are 0..n-1, the adapters' numbering)."""
    if len(landing) and landing[0] == 0 and landing[-1] == len(landing) - 1:
        return np.sort(landing_rows)  # sorted, unique and spanning 0..n-1: the id is the position
    return np.sort(pd.Index(landing).get_indexer(landing_rows))


def rows_where(frame: pd.DataFrame, mask: np.ndarray, columns: list[str]) -> pd.DataFrame:
    """``frame[columns]`` at the rows where ``mask`` holds; no row-by-row copy when every row qualifies."""
    if mask.all():
        return frame[columns]  # the common case (clean batches): boolean indexing would copy every cell
    return frame.loc[mask, columns]


def rule_columns(contract: Contract, rule: RowRule) -> list[str]:
    """The contract columns a row rule's expression names, in the order the expression names them."""
    names = dict.fromkeys(re.findall(r"[A-Za-z_]\w*", rule.expression))
    columns = [name for name in names if name in contract.column_names]
    if not columns:
        raise ValueError(f"{contract.ref}: rule {rule.name}: expression names no contract column")
    return columns


def add_row_rules(
    contract: Contract, typed: pd.DataFrame, text: dict[str, pd.Series], findings: Findings
) -> None:
    """Evaluate each row rule with pandas on the rows where all its columns are present."""
    for rule in contract.rules:
        columns = rule_columns(contract, rule)
        judged = typed[columns].notna().all(axis=1).to_numpy()
        if not judged.any():
            continue
        passed = evaluate_rule(contract, rule, rows_where(typed, judged, columns))
        positions = np.flatnonzero(judged)[~passed]
        findings.add(positions, None, rule.name, describe_rows(text, columns, positions))


def evaluate_rule(contract: Contract, rule: RowRule, rows: pd.DataFrame) -> np.ndarray:
    """Boolean array: the rule's expression per row (rows hold no nulls in the rule's columns)."""
    try:
        outcome = rows.eval(rule.expression, engine="python")
    except Exception as err:  # eval raises many kinds; the message names the rule and keeps the cause
        raise ValueError(
            f"{contract.ref}: rule {rule.name}: cannot evaluate {rule.expression!r}: {err}"
        ) from err
    if not isinstance(outcome, pd.Series) or not pd.api.types.is_bool_dtype(outcome.dtype):
        raise ValueError(f"{contract.ref}: rule {rule.name}: {rule.expression!r} is not a true/false test")
    return outcome.to_numpy(dtype=bool)


def describe_rows(text: dict[str, pd.Series], columns: list[str], positions: np.ndarray) -> np.ndarray:
    """'col=value, col=value' per row, from the original text."""
    parts = [f"{c}=" + pd.Series(text[c].to_numpy()[positions], dtype=object).astype(str) for c in columns]
    joined = parts[0]
    for part in parts[1:]:
        joined = joined + ", " + part
    return joined.to_numpy(dtype=object)


def key_sets(contract: Contract) -> list[list[str]]:
    """The primary key and every unique column (a unique column equal to the key is checked once)."""
    keys = [list(contract.primary_key)]
    keys += [[c.name] for c in contract.columns if c.unique and [c.name] != contract.primary_key]
    return keys


def add_duplicates(
    contract: Contract, typed: pd.DataFrame, text: dict[str, pd.Series], findings: Findings
) -> None:
    """Later copies of a key (keep-first, in landing order) are ``duplicate_key`` violations."""
    for columns in key_sets(contract):
        judged = typed[columns].notna().all(axis=1).to_numpy()
        candidates = np.flatnonzero(judged)
        repeated = rows_where(typed, judged, columns).duplicated(keep="first").to_numpy()
        positions = candidates[repeated]
        if len(positions) == 0:
            continue
        key_text = pd.Series(text[columns[0]].to_numpy()[positions], dtype=object).astype(str)
        for column in columns[1:]:
            key_text = (
                key_text + ", " + pd.Series(text[column].to_numpy()[positions], dtype=object).astype(str)
            )
        findings.add(positions, ",".join(columns), DUPLICATE_KEY, key_text.to_numpy(dtype=object))


def reasons_by_row(violations: pd.DataFrame) -> pd.Series:
    """JSON list of violations per flagged row position (the ``_reasons`` column)."""
    reasons: dict[int, list[dict[str, str | None]]] = {}
    for pos, column, rule, observed in zip(
        violations["pos"].to_numpy(),
        violations["column"].to_numpy(),
        violations["rule"].to_numpy(),
        violations["observed"].to_numpy(),
        strict=True,
    ):
        reasons.setdefault(int(pos), []).append({"column": column, "rule": rule, "observed": observed})
    return pd.Series({pos: json.dumps(items) for pos, items in reasons.items()}, dtype=object)


def count_rows(violations: pd.DataFrame) -> tuple[dict[str, int], dict[tuple[str | None, str], int]]:
    """Rows per rule, and rows per (column, rule): a row counts once per rule however often it broke it."""
    if violations.empty:
        return {}, {}
    by_rule = violations[["pos", "rule"]].drop_duplicates().groupby("rule").size()
    pairs = violations[["pos", "column", "rule"]].drop_duplicates()
    by_pair = pairs.groupby(["column", "rule"], dropna=False).size()
    by_column_rule = {
        (None if pd.isna(column) else str(column), str(rule)): int(n) for (column, rule), n in by_pair.items()
    }
    return {str(rule): int(n) for rule, n in by_rule.items()}, by_column_rule


def split(
    contract: Contract,
    typed: pd.DataFrame,
    text: dict[str, pd.Series],
    frame: pd.DataFrame,
    findings: Findings,
) -> ValidationResult:
    """Build the valid (typed) and quarantined (original text + reasons) frames and their counts."""
    flagged = findings.flagged()
    keep = [*contract.column_names, LANDING_ROW, SOURCE]
    valid = rows_where(typed, ~flagged, keep)
    if flagged.any():
        valid = valid.reset_index(drop=True)

    violations = findings.long_form()
    quarantined = pd.DataFrame({name: text[name].to_numpy()[flagged] for name in contract.column_names})
    quarantined[LANDING_ROW] = frame[LANDING_ROW].to_numpy(dtype=np.int64)[flagged]
    quarantined[SOURCE] = frame[SOURCE].to_numpy()[flagged]
    quarantined[REASONS] = reasons_by_row(violations).reindex(np.flatnonzero(flagged)).to_numpy()

    by_rule, by_column_rule = count_rows(violations)
    return ValidationResult(
        contract_ref=contract.ref,
        landed=len(frame),
        valid_count=int((~flagged).sum()),
        quarantined_count=int(flagged.sum()),
        counts_by_reason=by_rule,
        counts_by_column_rule=by_column_rule,
        valid=valid,
        quarantined=quarantined,
    )
