"""The public datasets enter like a user's own export: a contract each, the file-drop path, Dagster."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from data_contracts.contract import load_contracts
from pipelines.landing import land_files
from pipelines.runner import ingest_batches
from pipelines.zones import ZoneStore
from tests.conftest import SHARED_DATASETS

pytestmark = pytest.mark.slow

AI4I = SHARED_DATASETS / "ai4i2020.csv"
STEEL = SHARED_DATASETS / "steel_industry_energy.csv"


def _require(*paths: Path) -> None:
    for path in paths:
        if not path.exists():
            pytest.skip(f"public dataset {path} is missing")


def test_real_datasets_land_with_zero_quarantine(settings) -> None:
    _require(AI4I, STEEL)
    contracts = load_contracts(settings.resolved_contracts_dir)
    land_files([AI4I, STEEL], settings.landing_dir, contracts)
    [run] = ingest_batches(settings)
    assert run.success, run.failed_steps
    loads = {load.table_name: load for load in run.loads}
    assert (loads["ai4i_process_steps"].landed, loads["ai4i_process_steps"].quarantined) == (10_000, 0)
    assert (loads["steel_energy"].landed, loads["steel_energy"].quarantined) == (35_040, 0)
    curated = ZoneStore(settings.home).read_all("curated", "steel_energy")
    assert curated["ts"].is_unique and curated["ts"].dt.year.eq(2018).all()  # typed, no duplicate interval
    assert pd.api.types.is_float_dtype(curated["usage_kwh"])


def test_planted_defects_in_a_real_export_are_quarantined_exactly(settings, tmp_path: Path) -> None:
    _require(AI4I)
    raw = pd.read_csv(AI4I, dtype=str, keep_default_na=False)
    planted = {
        10: ("Torque [Nm]", "999"),  # out of range
        20: ("Rotational speed [rpm]", "fast"),  # wrong type
        30: ("Type", "X"),  # not an allowed variant
        40: ("Air temperature [K]", ""),  # null in a required column
        50: ("Machine failure", "2"),  # label outside {0, 1}
    }
    for row, (column, value) in planted.items():
        raw.loc[row, column] = value
    duplicate = raw.iloc[[60]]
    raw = pd.concat([raw.iloc[:61], duplicate, raw.iloc[61:]], ignore_index=True)  # copy of UDI 61 after it
    drop = tmp_path / "ai4i2020.csv"
    raw.to_csv(drop, index=False)
    land_files([drop], settings.landing_dir, load_contracts(settings.resolved_contracts_dir))
    [run] = ingest_batches(settings)
    assert run.success, run.failed_steps
    quarantined = ZoneStore(settings.home).read_all("quarantine", "ai4i_process_steps")
    assert sorted(quarantined["_landing_row"]) == [*sorted(planted), 61]
    assert len(ZoneStore(settings.home).read_all("curated", "ai4i_process_steps")) == 10_000 - len(planted)
