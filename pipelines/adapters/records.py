"""Vendor records (or vendor-named columns) -> the landed frame of a contract, every value kept as text.

Speed matters here (a batch can carry a million records), so the work is column-wise: the key set of each
record is checked once per distinct key set (records of one extract almost always share one), each column's
Python types are looked at once, and per-cell Python only runs for the rare columns holding mixed or nested
values.

A contract column that no vendor field of the mapping names: if the column is nullable the source simply does
not carry it (None, no issue); if it is required every row gets ``missing_field`` for it, so the quarantine says
*why* the rows fail instead of a bare not-null violation. (No shipped mapping leaves a required column unmapped.)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from itertools import islice
from operator import itemgetter, methodcaller
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data_contracts.contract import Contract, SourceMapping
from data_contracts.landed import ISSUES, LANDING_ROW, SOURCE, Violation, issues_to_json
from pipelines.adapters.errors import SourceError

ODATA_ANNOTATION = "@odata."
_BOOL_TEXT = {True: "true", False: "false"}
_NONE_TYPE = type(None)
_FAST_CONVERTERS = {int: str, float: float.__repr__, bool: _BOOL_TEXT.__getitem__}

CellIssues = dict[int, list[Violation]]


@dataclass(frozen=True)
class FieldPlan:
    """Which vendor field fills which contract column, and the issues every row of this mapping shares."""

    vendor_of: dict[str, str]  # canonical column -> vendor field
    vendor_fields: frozenset[str]
    unmapped_required: tuple[str, ...]

    @classmethod
    def build(cls, contract: Contract, mapping: SourceMapping) -> FieldPlan:
        """Check the mapping can be read one field per column and note required columns it leaves empty."""
        vendor_of: dict[str, str] = {}
        for vendor, column in mapping.fields.items():
            if column in vendor_of:
                raise SourceError(
                    f"contract {contract.name} mapping {mapping.entity}",
                    f"vendor fields {vendor_of[column]!r} and {vendor!r} both map to one column",
                    field=column,
                )
            vendor_of[column] = vendor
        unmapped = tuple(c.name for c in contract.columns if c.name not in vendor_of and not c.nullable)
        return cls(vendor_of, frozenset(mapping.fields), unmapped)

    def key_violations(self, keys: Iterable[Any]) -> list[Violation]:
        """Issues of a record (or file header) with these field names: unknown, then missing fields."""
        names = [str(k) for k in keys]
        present = set(names)
        # OData control information ("@odata.etag") and property annotations ("Price@odata.type") are not data
        unknown = [
            Violation(column=None, rule="unknown_field", observed=name)
            for name in names
            if name not in self.vendor_fields and ODATA_ANNOTATION not in name
        ]
        missing = [
            Violation(column=column, rule="missing_field")
            for column, vendor in self.vendor_of.items()
            if vendor not in present
        ]
        unmapped = [Violation(column=column, rule="missing_field") for column in self.unmapped_required]
        return unknown + missing + unmapped


def values_to_text(values: Sequence[Any]) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """JSON-like values -> object array of text (None stays None), plus (row, observed) of unreadable cells.

    ints -> "12", floats -> repr ("12.5", "12.0"), bools -> "true"/"false", strings unchanged; dates and times
    -> ISO 8601; nested objects/arrays and anything else without a faithful text form are unreadable.
    """
    types = set(map(type, values))
    has_none = _NONE_TYPE in types
    types.discard(_NONE_TYPE)
    if types <= {str}:
        return _object_array(values), []
    convert = _FAST_CONVERTERS.get(next(iter(types))) if len(types) == 1 else None
    if convert is None:
        return _general_to_text(values)
    if not has_none:
        return _object_array(list(map(convert, values))), []
    return _object_array([None if v is None else convert(v) for v in values]), []


def repeated(value: str | None, n_rows: int) -> np.ndarray:
    """An object column holding the one given object n times (np.full would copy a str into every cell)."""
    out = np.empty(n_rows, dtype=object)
    out[:] = value
    return out


def _object_array(values: Sequence[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values  # only str/None reach here, so numpy cannot mistake them for nested sequences
    return out


def _general_to_text(values: Sequence[Any]) -> tuple[np.ndarray, list[tuple[int, str]]]:
    # Mixed columns are usually one odd cell among millions: keep the common types on a short inline path.
    text: list[str | None] = []
    bad: list[tuple[int, str]] = []
    for row, value in enumerate(values):
        kind = type(value)
        if kind is str or value is None:
            text.append(value)
        elif kind is int:
            text.append(str(value))
        elif kind is float:
            text.append(repr(value))
        else:
            try:
                text.append(cell_to_text(value))
            except _Unreadable as err:
                text.append(None)
                bad.append((row, err.observed))
    return _object_array(text), bad


class _Unreadable(Exception):
    def __init__(self, observed: str):
        self.observed = observed


def cell_to_text(value: Any) -> str | None:
    """One value -> its text form; raises for values that have none (nested objects, bytes, ...)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return _BOOL_TEXT[bool(value)]
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(float(value))
    if isinstance(value, np.generic):
        return cell_to_text(value.item())
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping | list | tuple | np.ndarray):
        raise _Unreadable(json.dumps(_jsonable(value), default=str))
    raise _Unreadable(repr(value))


def _jsonable(value: Any) -> Any:
    return value.tolist() if isinstance(value, np.ndarray) else value


def records_to_landed(
    records: Iterable[Mapping[str, Any]],
    contract: Contract,
    mapping: SourceMapping,
    source_label: str,
    start_row: int = 0,
    *,
    chunk_rows: int = 10_000,
) -> pd.DataFrame:
    """Vendor records -> the contract's landed frame: columns renamed, values as text, issues per row.

    Records are consumed ``chunk_rows`` at a time, so a lazy source (paged files, HTTP) never holds more than a
    page and a chunk of vendor dicts alongside the text columns being built.
    """
    builder = _LandedBuilder(FieldPlan.build(contract, mapping), contract.column_names)
    iterator = iter(records)
    while chunk := list(islice(iterator, chunk_rows)):
        builder.add(chunk)
    columns, issues = builder.finish()
    return assemble_landed(columns, issues, source_label, start_row)


class _LandedBuilder:
    """Accumulates text columns and issue texts chunk by chunk."""

    def __init__(self, plan: FieldPlan, columns: list[str]):
        self.plan = plan
        self.columns = columns
        self.parts: dict[str, list[np.ndarray]] = {c: [] for c in columns}
        self.issue_parts: list[np.ndarray] = []
        self.by_keys: dict[tuple[Any, ...], list[Violation]] = {}  # key set -> its issues
        self.texts: dict[tuple[Any, ...], str] = {}  # key set -> its issues as JSON

    def add(self, chunk: list[Any]) -> None:
        row_extra = _replace_non_objects(chunk)
        not_objects = set(row_extra)
        keys = list(map(tuple, chunk))  # in C: one tuple of field names per record
        distinct = set(keys)
        for key_set in distinct - self.by_keys.keys():
            self.by_keys[key_set] = self.plan.key_violations(key_set)
            self.texts[key_set] = issues_to_json(self.by_keys[key_set])
        everywhere = self.plan.vendor_fields.intersection(*distinct)
        for column in self.columns:
            vendor = self.plan.vendor_of.get(column)
            if vendor is None:
                self.parts[column].append(repeated(None, len(chunk)))
                continue
            # itemgetter runs in C but raises on a missing key: only when every record of the chunk has it
            pick = itemgetter(vendor) if vendor in everywhere else methodcaller("get", vendor)
            text, bad = values_to_text(list(map(pick, chunk)))
            self.parts[column].append(text)
            for row, observed in bad:
                row_extra.setdefault(row, []).append(
                    Violation(column=column, rule="unreadable_value", observed=observed)
                )
        self.issue_parts.append(self._issue_texts(keys, row_extra, not_objects))

    def finish(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        columns = {c: _concat_arrays(parts) for c, parts in self.parts.items()}
        return columns, _concat_arrays(self.issue_parts)

    def _issue_texts(
        self, keys: list[tuple[Any, ...]], row_extra: CellIssues, not_objects: set[int]
    ) -> np.ndarray:
        """Rows with one key set share one JSON string (cheap on 1M rows); rows with cell issues get their own."""
        out = _object_array(list(map(self.texts.__getitem__, keys)))
        for row, extra in row_extra.items():
            # a record that is not an object has no fields: one unreadable_record, not a missing_field per column
            key_issues = [] if row in not_objects else self.by_keys[keys[row]]
            out[row] = issues_to_json(key_issues + extra)
        return out


def _replace_non_objects(chunk: list[Any]) -> CellIssues:
    """Records that are not JSON objects become empty rows carrying an unreadable_record issue."""
    if all(issubclass(kind, Mapping) for kind in set(map(type, chunk))):
        return {}
    extra: CellIssues = {}
    for row, record in enumerate(chunk):
        if not isinstance(record, Mapping):
            observed = json.dumps(_jsonable(record), default=str)
            extra[row] = [Violation(column=None, rule="unreadable_record", observed=observed)]
            chunk[row] = {}  # the chunk is our own list: the caller's records are untouched
    return extra


def _concat_arrays(parts: list[np.ndarray]) -> np.ndarray:
    if not parts:
        return np.empty(0, dtype=object)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def columns_to_landed(
    vendor_columns: Mapping[str, np.ndarray],
    n_rows: int,
    contract: Contract,
    mapping: SourceMapping,
    source_label: str,
    start_row: int = 0,
    cell_issues: Mapping[str, list[tuple[int, str]]] | None = None,
) -> pd.DataFrame:
    """Text columns under vendor names (a file drop) -> the landed frame; header issues apply to every row.

    Args:
        vendor_columns: vendor field -> object array of text/None, each ``n_rows`` long.
        cell_issues: vendor field -> (row, observed) of values that had no text form.
    """
    plan = FieldPlan.build(contract, mapping)
    header_issues = plan.key_violations(vendor_columns)
    columns = {
        column: vendor_columns[plan.vendor_of[column]]
        if plan.vendor_of.get(column) in vendor_columns
        else repeated(None, n_rows)
        for column in contract.column_names
    }
    by_row: CellIssues = {}
    for vendor, bad in (cell_issues or {}).items():
        column = next((c for c, v in plan.vendor_of.items() if v == vendor), None)
        for row, observed in bad:
            by_row.setdefault(row, []).append(
                Violation(column=column, rule="unreadable_value", observed=observed)
            )
    # one JSON string shared by every row: an extra CSV column on 1M rows costs 8 MB of pointers, not 1M strings
    issues = repeated(issues_to_json(header_issues), n_rows)
    for row, extra in by_row.items():
        issues[row] = issues_to_json(header_issues + extra)
    return assemble_landed(columns, issues, source_label, start_row)


def assemble_landed(
    columns: Mapping[str, np.ndarray], issues: np.ndarray, source_label: str, start_row: int
) -> pd.DataFrame:
    """Contract columns + the bookkeeping columns, rows numbered from start_row."""
    n_rows = len(issues)
    data: dict[str, Any] = dict(columns)
    data[LANDING_ROW] = np.arange(start_row, start_row + n_rows, dtype=np.int64)
    data[SOURCE] = repeated(source_label, n_rows)
    data[ISSUES] = issues
    return pd.DataFrame(data, copy=False)  # the arrays are ours: no 2-D consolidation copy of 1M x N objects


@dataclass(frozen=True)
class LandedPart:
    """The landed rows one source mapping gave for a table: which mapping, entity and files they came from."""

    table: str
    mapping_name: str
    entity: str  # OData entity set, Plex resource or file stem
    files: tuple[str, ...]  # file names (or URLs) read, for the manifest check and error messages
    frame: pd.DataFrame


def combine_parts(parts: Iterable[LandedPart]) -> dict[str, pd.DataFrame]:
    """Parts -> one landed frame per table, parts kept in the order read and _landing_row numbered 0..n-1."""
    by_table: dict[str, list[pd.DataFrame]] = {}
    for part in parts:
        by_table.setdefault(part.table, []).append(part.frame)
    return {table: _concat(frames) for table, frames in by_table.items()}


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    if len(frames) == 1:
        return frames[0]
    non_empty = [f for f in frames if len(f)] or frames[:1]  # concat with empty frames would loosen dtypes
    frame = pd.concat(non_empty, ignore_index=True)
    frame[LANDING_ROW] = np.arange(len(frame), dtype=np.int64)
    return frame


def parse_json(data: bytes | str) -> Any:
    """JSON with every number kept as the text it was written as ("12.50" stays "12.50"), and faster too."""
    return json.loads(data, parse_float=str, parse_int=str)


def load_json_file(path: Path) -> Any:
    """A whole JSON file, or a SourceError naming the file and what is wrong with it."""
    location = f"{path.parent.name}/{path.name}"
    try:
        return parse_json(path.read_bytes())
    except json.JSONDecodeError as err:
        raise SourceError(
            location, f"invalid JSON at line {err.lineno} column {err.colno}: {err.msg}"
        ) from None
    except UnicodeDecodeError as err:
        raise SourceError(location, f"not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise SourceError(location, f"cannot read file: {err.strerror}") from None
