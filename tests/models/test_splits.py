"""Time-ordered splits never let a later row into an earlier slice."""

from __future__ import annotations

import pandas as pd
import pytest

from models.splits import split_by_time


def _frame(hours: int) -> pd.DataFrame:
    return pd.DataFrame({"ts": pd.date_range("2025-01-01", periods=hours, freq="h"), "y": range(hours)})


def test_slices_are_ordered_in_time_and_cover_every_row() -> None:
    split = split_by_time(_frame(1000), "ts", validation_share=0.2, test_share=0.1)
    assert split.train["ts"].max() < split.validation["ts"].min()
    assert split.validation["ts"].max() < split.test["ts"].min()
    assert len(split.train) + len(split.validation) + len(split.test) == 1000
    assert 80 <= len(split.test) <= 120 and 180 <= len(split.validation) <= 220


def test_fixed_test_start() -> None:
    split = split_by_time(_frame(1000), "ts", test_start=pd.Timestamp("2025-02-01"))
    assert split.test["ts"].min() == pd.Timestamp("2025-02-01")


def test_too_little_history_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="a split is empty"):
        split_by_time(_frame(2), "ts")
