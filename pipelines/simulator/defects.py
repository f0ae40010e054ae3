"""Plant contract defects into canonical tables, each breaking exactly one rule of its contract.

The rules come from the :class:`Contract` objects, not from a hard-coded list of columns. Primary key columns
are never touched, except ``unknown_machine`` in a key column that references machines (sensor_readings),
where the new key is checked to stay unique.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from data_contracts.contract import ColumnType, Contract
from pipelines.simulator.config import DefectKind

MACHINE_REFERENCE = "machines.machine_id"
BAD_TIMESTAMPS = ("2025-13-45T25:61:00", "yesterday", "2025-02-30T08:00:00")
BAD_DATES = ("2025-13-45", "yesterday")
WRONG_TYPES = ("n/a", "12,5kg", "approx. 40")
NUMERIC = (ColumnType.INTEGER, ColumnType.FLOAT)
IDENTIFIER = re.compile(r"[A-Za-z_]\w*")


@dataclass(frozen=True)
class PlantedDefect:
    """One planted defect: the row (primary key values joined by "|", after the defect), kind and column.

    ``column`` is None for ``duplicate_key`` (the whole row is copied; the report names the later copy).
    ``row`` is the 0-based position of the row in the defected canonical frame, which emitters keep.
    """

    table: str
    key: str
    kind: str
    column: str | None
    row: int


def format_key_value(value: object) -> str:
    """A primary key value as it appears in keys: timestamps as ISO 8601 without zone."""
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%dT%H:%M:%S")
    return str(value)


def row_key(frame: pd.DataFrame, position: int, key_columns: list[str]) -> str:
    """Primary key values of one row joined by "|"."""
    return "|".join(format_key_value(frame.iloc[position][c]) for c in key_columns)


def _candidates(contract: Contract, kind: DefectKind) -> list[str]:
    """Columns a defect kind may be planted in."""
    keys = set(contract.primary_key)
    cols = contract.columns
    if kind is DefectKind.NULL:
        return [c.name for c in cols if not c.nullable and not c.unique and c.name not in keys]
    if kind is DefectKind.OUT_OF_RANGE:
        return [
            c.name
            for c in cols
            if c.type in NUMERIC and c.name not in keys and (c.min, c.max) != (None, None)
        ]
    if kind is DefectKind.UNKNOWN_MACHINE:
        return [c.name for c in cols if c.references == MACHINE_REFERENCE]
    if kind is DefectKind.BAD_TIMESTAMP:
        return [
            c.name for c in cols if c.type in (ColumnType.TIMESTAMP, ColumnType.DATE) and c.name not in keys
        ]
    if kind is DefectKind.WRONG_TYPE:
        return [c.name for c in cols if c.type in NUMERIC and c.name not in keys]
    return contract.primary_key  # duplicate_key: the row is copied whole


def _rules_hold(contract: Contract, row: pd.Series, column: str, value: object) -> bool:
    """True if every row rule that mentions ``column`` still holds (or cannot be judged) with ``value``."""
    for rule in contract.rules:
        names = [n for n in IDENTIFIER.findall(rule.expression) if n in contract.column_names]
        if column not in names:
            continue
        values = {}
        for name in names:
            v = value if name == column else row[name]
            ctype = contract.column(name).type
            v = (
                pd.to_datetime(v, errors="coerce")
                if ctype is ColumnType.TIMESTAMP
                else pd.to_numeric(v, errors="coerce")
            )
            if pd.isna(v):
                break
            values[name] = [v]
        else:
            if not bool(pd.DataFrame(values).eval(rule.expression).iloc[0]):
                return False
    return True


def _out_of_range_value(contract: Contract, row: pd.Series, column: str) -> object | None:
    col = contract.column(column)
    span = (col.max - col.min) if col.min is not None and col.max is not None else 100.0
    step = max(1.0, 0.05 * span)
    options = []
    if col.min is not None:
        options.append(col.min - step)
    if col.max is not None:
        options.append(col.max + step)
    for value in options:
        typed = int(value) if col.type is ColumnType.INTEGER else round(float(value), 3)
        if _rules_hold(contract, row, column, typed):
            return typed
    return None


class DefectPlanter:
    """Plants defects table by table with one random generator."""

    def __init__(
        self, rng: np.random.Generator, kinds: tuple[DefectKind, ...], machine_ids: set[str]
    ) -> None:
        self.rng = rng
        self.kinds = kinds
        self.unknown_ids = [f"M-{k}" for k in range(999, 99, -1) if f"M-{k}" not in machine_ids]
        if not self.unknown_ids:
            raise ValueError("lines x machines_per_line: no machine id left for unknown_machine defects")

    def plant(
        self, frame: pd.DataFrame, contract: Contract, rate: float
    ) -> tuple[pd.DataFrame, list[PlantedDefect]]:
        """Return a defected copy of ``frame`` and the report of every planted row."""
        kinds = [k for k in self.kinds if _candidates(contract, k)]
        n = len(frame)
        count = round(n * rate)
        if not kinds or count == 0:
            return frame, []
        frame = frame.copy()
        # unknown ids never occur in the clean frame, so new keys can only collide with each other
        seen_keys: set[str] = set()
        cells: list[tuple[int, str, str]] = []  # (original position, kind, column)
        duplicates: list[int] = []
        for pos in np.sort(self.rng.choice(n, size=count, replace=False)):
            kind = kinds[int(self.rng.integers(len(kinds)))]
            if kind is DefectKind.DUPLICATE_KEY:
                duplicates.append(int(pos))
                continue
            column = self._apply(frame, contract, int(pos), kind, seen_keys)
            if column is not None:
                cells.append((int(pos), kind.value, column))
        return self._with_copies(frame, contract, cells, duplicates)

    def _pick(self, items: tuple | list):
        return items[int(self.rng.integers(len(items)))]

    def _apply(
        self, frame: pd.DataFrame, contract: Contract, pos: int, kind: DefectKind, seen_keys: set[str]
    ) -> str | None:
        """Plant one cell defect; returns its column, or None when no column of the row can take it."""
        columns = list(_candidates(contract, kind))
        self.rng.shuffle(columns)
        row = frame.iloc[pos]
        for column in columns:
            ctype = contract.column(column).type
            if kind is DefectKind.NULL:
                value = None
            elif kind is DefectKind.OUT_OF_RANGE:
                value = _out_of_range_value(contract, row, column)
                if value is None:
                    continue
            elif kind is DefectKind.UNKNOWN_MACHINE:
                value = self._unknown_machine(frame, contract, pos, column, seen_keys)
            elif kind is DefectKind.BAD_TIMESTAMP:
                value = self._pick(BAD_DATES if ctype is ColumnType.DATE else BAD_TIMESTAMPS)
            else:
                value = self._pick(WRONG_TYPES)
            if frame[column].dtype != object:
                frame[column] = frame[column].astype(object)
            frame.iat[pos, frame.columns.get_loc(column)] = value
            return column
        return None

    def _unknown_machine(
        self, frame: pd.DataFrame, contract: Contract, pos: int, column: str, seen_keys: set[str]
    ) -> str:
        if column not in contract.primary_key:
            return self.unknown_ids[0]
        others = [format_key_value(frame.iloc[pos][c]) for c in contract.primary_key]
        index = contract.primary_key.index(column)
        for candidate in self.unknown_ids:
            others[index] = candidate
            key = "|".join(others)
            if key not in seen_keys:
                seen_keys.add(key)
                return candidate
        raise ValueError(f"{contract.name}: no unknown machine id keeps the primary key unique")

    def _with_copies(
        self,
        frame: pd.DataFrame,
        contract: Contract,
        cells: list[tuple[int, str, str]],
        duplicates: list[int],
    ) -> tuple[pd.DataFrame, list[PlantedDefect]]:
        """Insert each duplicate right after its original and report every defect at its final position."""
        dup = np.array(sorted(duplicates), dtype=int)
        order = np.sort(np.concatenate([np.arange(len(frame)), dup]), kind="stable")
        out = frame.iloc[order].reset_index(drop=True)
        shifted = lambda p: p + int(np.searchsorted(dup, p, side="left"))  # noqa: E731
        report = [
            PlantedDefect(
                contract.name, row_key(out, shifted(p), contract.primary_key), kind, column, shifted(p)
            )
            for p, kind, column in cells
        ]
        report += [
            PlantedDefect(
                contract.name,
                row_key(out, shifted(p) + 1, contract.primary_key),
                DefectKind.DUPLICATE_KEY.value,
                None,
                shifted(p) + 1,
            )
            for p in duplicates
        ]
        report.sort(key=lambda d: d.row)
        return out, report
