"""Data tier: simulated tables meet their contracts, and planted defects break exactly their own rule."""

from __future__ import annotations

import math
import re
from collections import Counter
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest

from data_contracts.contract import ColumnType, Contract, load_contracts
from pipelines.simulator import DefectKind, SimulationConfig, simulate
from pipelines.simulator.history import TABLES

CONTRACTS = load_contracts(Path(__file__).resolve().parents[3] / "data_contracts" / "contracts")
ISO_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
IDENT = re.compile(r"[A-Za-z_]\w*")
# which checker rule each defect kind must trip
EXPECTED_RULE = {
    "null": "not_null",
    "out_of_range": "range",
    "unknown_machine": "references",
    "duplicate_key": "primary_key",
    "bad_timestamp": "type",
    "wrong_type": "type",
}


def _is_null(v: object) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v))


def _coerce(v: object, ctype: ColumnType) -> object | None:
    """The typed value, or None when ``v`` does not fit the type."""
    if ctype is ColumnType.STRING:
        return v if isinstance(v, str) else None
    if ctype is ColumnType.INTEGER:
        return int(v) if isinstance(v, int) and not isinstance(v, bool) else None
    if ctype is ColumnType.FLOAT:
        ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        return float(v) if ok else None
    if ctype is ColumnType.TIMESTAMP:
        if isinstance(v, datetime):
            return pd.Timestamp(v)
        if isinstance(v, str) and ISO_TS.match(v):
            try:
                return pd.Timestamp(datetime.fromisoformat(v))
            except ValueError:
                return None
        return None
    if ctype is ColumnType.DATE:
        if isinstance(v, date) and not isinstance(v, datetime):
            return v
        if isinstance(v, str) and ISO_DATE.match(v):
            try:
                return date.fromisoformat(v)
            except ValueError:
                return None
        return None
    raise AssertionError(ctype)


def check(
    frame: pd.DataFrame, contract: Contract, machine_ids: set[str]
) -> list[tuple[int, str | None, str]]:
    """Every violation as (row position, column or None, rule): a small pure-pandas contract checker."""
    assert list(frame.columns) == contract.column_names
    found: list[tuple[int, str | None, str]] = []
    typed: dict[str, list[object]] = {}
    for col in contract.columns:
        out: list[object] = []
        for i, v in enumerate(frame[col.name].tolist()):
            if _is_null(v):
                if not col.nullable:
                    found.append((i, col.name, "not_null"))
                out.append(None)
                continue
            t = _coerce(v, col.type)
            out.append(t)
            if t is None:
                found.append((i, col.name, "type"))
            elif (col.min is not None and t < col.min) or (col.max is not None and t > col.max):
                found.append((i, col.name, "range"))
            elif col.allowed is not None and t not in col.allowed:
                found.append((i, col.name, "allowed"))
            elif col.pattern is not None and not re.search(col.pattern, t):
                found.append((i, col.name, "pattern"))
            elif col.references == "machines.machine_id" and t not in machine_ids:
                found.append((i, col.name, "references"))
        typed[col.name] = out
    keys = list(zip(*(frame[k].tolist() for k in contract.primary_key), strict=True))
    seen: set[tuple] = set()
    for i, key in enumerate(keys):
        if key in seen:
            found.append((i, None, "primary_key"))
        seen.add(key)
    for rule in contract.rules:
        names = [n for n in IDENT.findall(rule.expression) if n in contract.column_names]
        rows = [i for i in range(len(frame)) if all(typed[n][i] is not None for n in names)]
        if not rows:
            continue
        sub = pd.DataFrame({n: [typed[n][i] for i in rows] for n in names})
        for i, ok in zip(rows, sub.eval(rule.expression).tolist(), strict=True):
            if not ok:
                found.append((i, None, rule.name))
    return found


@pytest.fixture(scope="module")
def clean():
    return simulate(SimulationConfig(days=10, seed=3))


@pytest.fixture(scope="module")
def defected():
    return simulate(SimulationConfig(days=7, seed=5, defect_rate=0.04))


def test_columns_are_exactly_the_contract_columns(clean):
    assert list(clean.tables) == list(TABLES)
    for name, frame in clean.tables.items():
        assert list(frame.columns) == CONTRACTS[name].column_names
        assert len(frame) > 0, name


@pytest.mark.parametrize("table", TABLES)
def test_clean_tables_meet_their_contracts(clean, table):
    machine_ids = set(clean.tables["machines"]["machine_id"])
    assert check(clean.tables[table], CONTRACTS[table], machine_ids) == []


def test_clean_run_plants_no_defects(clean):
    assert clean.planted_defects == []


def test_every_kind_is_planted(defected):
    kinds = Counter(d.kind for d in defected.planted_defects)
    assert set(kinds) == {k.value for k in DefectKind}
    assert not any(d.table == "employees" for d in defected.planted_defects)


def test_each_defect_breaks_exactly_its_rule_and_nothing_else(defected):
    machine_ids = set(defected.tables["machines"]["machine_id"])
    by_table: dict[str, dict[int, object]] = {}
    for d in defected.planted_defects:
        by_table.setdefault(d.table, {})[d.row] = d
    for name, frame in defected.tables.items():
        violations = check(frame, CONTRACTS[name], machine_ids)
        planted = by_table.get(name, {})
        rows = Counter(i for i, _, _ in violations)
        assert set(rows) == set(planted), f"{name}: rows with violations differ from planted rows"
        for i, column, rule in violations:
            d = planted[i]
            assert rows[i] == 1, f"{name} row {i} breaks more than one rule"
            assert rule == EXPECTED_RULE[d.kind], (name, i, d, rule)
            assert column == d.column


def test_defect_keys_name_the_row_after_the_defect(defected):
    for d in defected.planted_defects:
        frame = defected.tables[d.table]
        row = frame.iloc[d.row]
        parts = [
            v.strftime("%Y-%m-%dT%H:%M:%S") if isinstance(v, pd.Timestamp) else str(v)
            for v in (row[k] for k in CONTRACTS[d.table].primary_key)
        ]
        assert "|".join(parts) == d.key
        if d.kind == "duplicate_key":
            assert frame.iloc[d.row - 1].equals(row)


def test_defect_rate_is_honoured(defected, clean):
    counts = Counter(d.table for d in defected.planted_defects)
    sensors = defected.tables["sensor_readings"]
    assert counts["sensor_readings"] == pytest.approx(0.04 * len(sensors), rel=0.05)
