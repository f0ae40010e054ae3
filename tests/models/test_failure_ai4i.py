"""The failure forecaster on AI4I 2020: physics features only, published quality, honest split description."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data_contracts.contract import load_contracts
from models.failure_ai4i import evaluate_ai4i, evaluate_seed
from models.failure_features import AI4I_FORBIDDEN
from tests.conftest import REPO_ROOT, SHARED_DATASETS

AI4I = SHARED_DATASETS / "ai4i2020.csv"


@pytest.fixture(scope="module")
def steps() -> pd.DataFrame:
    """The AI4I export with canonical column names (the contract's file mapping)."""
    if not AI4I.exists():
        pytest.skip(f"{AI4I} is not on this machine")
    contract = load_contracts(Path(REPO_ROOT / "data_contracts" / "contracts"))["ai4i_process_steps"]
    return pd.read_csv(AI4I).rename(columns=contract.sources["file"].fields)


def test_one_split_reaches_published_quality(steps) -> None:
    result = evaluate_seed(steps, seed=0)
    assert result.metrics["roc_auc"] > 0.95
    assert result.metrics["pr_auc"] > 0.8
    assert result.metrics["pr_auc"] > 3 * result.metrics["baseline_tool_wear_pr_auc"]
    assert result.rows == {"train": 6400, "validation": 1600, "test": 2000}


def test_failure_mode_flags_do_not_reach_the_model(steps) -> None:
    scrambled = steps.copy()
    rng = np.random.default_rng(0)
    for column in AI4I_FORBIDDEN[1:]:  # the flags, not the label itself
        scrambled[column] = rng.integers(0, 2, len(steps))
    a = evaluate_seed(steps, seed=1)
    b = evaluate_seed(scrambled, seed=1)
    np.testing.assert_array_equal(a.probabilities, b.probabilities)


def test_report_states_the_stratified_scheme(steps) -> None:
    report = evaluate_ai4i(steps, seeds=(0, 1))
    assert "stratified" in report.split["scheme"] and "no timestamps" in report.split["scheme"]
    assert not set(AI4I_FORBIDDEN) & set(report.features)
    assert {"roc_auc", "roc_auc_std", "pr_auc", "pr_auc_std", "brier"} <= set(report.metrics)
    assert {s.value for s in report.slices} == {"H", "L", "M"}
    assert report.baseline.beats_baseline
    assert 0 < report.threshold < 1
