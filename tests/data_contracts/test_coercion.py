"""Text -> typed values per ColumnType: what fits, what is flagged, and the typed dtypes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from data_contracts.coercion import as_text, coerce_column, typed_literal
from data_contracts.contract import ColumnType


def coerce(values: list[object], column_type: ColumnType, timestamp_format: str | None = None):
    return coerce_column(pd.Series(values, dtype=object), column_type, timestamp_format)


@pytest.mark.parametrize(
    ("column_type", "good", "bad", "dtype"),
    [
        (
            ColumnType.INTEGER,
            ["12", "12.0", "1e3", "-0", "007"],
            ["12.5", "abc", "", "inf", "1.5e-3"],
            "Int64",
        ),
        (ColumnType.FLOAT, ["1.5", "-2", "3e2", " 4.0 "], ["nan", "inf", "x", "", "1,5"], "float64"),
        (
            ColumnType.TIMESTAMP,
            ["2025-03-01T06:15:00", "2025-03-01 06:15:00", "2025-03-01T06:15:00.250", "2025-03-01"],
            ["2025-03-01T06:15:00Z", "2025-03-01T06:15:00+02:00", "2025-02-30T00:00:00", "yesterday", ""],
            "datetime64[ns]",
        ),
        (
            ColumnType.DATE,
            ["2025-03-01", "2024-02-29"],
            ["2025-03-01T06:00:00", "2025-02-30", "01/03/2025"],
            "datetime64[ns]",
        ),
        (ColumnType.BOOLEAN, ["true", "False", "1", "no", "Y"], ["maybe", "2", ""], "boolean"),
    ],
)
def test_values_that_fit_and_values_flagged(column_type, good, bad, dtype):
    coerced = coerce([*good, None, *bad], column_type)
    assert str(coerced.values.dtype) == dtype
    assert coerced.failed.tolist() == [False] * len(good) + [False] + [True] * len(bad)
    assert coerced.values.isna().tolist() == [False] * len(good) + [True] * (1 + len(bad))


def test_integer_values_and_exact_large_ids():
    coerced = coerce(["12", "12.0", "1e3", "9007199254740993"], ColumnType.INTEGER)
    assert coerced.values.tolist()[:3] == [12, 12, 1000]
    exact = coerce(["9007199254740993", None], ColumnType.INTEGER).values
    assert exact.iloc[0] == 9007199254740993


def test_timestamps_are_naive_and_iso_when_no_format():
    values = coerce(["2025-03-01T06:15:00", "2025-03-01 07:00:00"], ColumnType.TIMESTAMP).values
    assert values.dt.tz is None
    assert values.tolist() == [pd.Timestamp("2025-03-01 06:15"), pd.Timestamp("2025-03-01 07:00")]


def test_timestamp_format_from_the_source_mapping_is_used():
    coerced = coerce(["01/02/2018 00:15", "2018-02-01T00:15:00"], ColumnType.TIMESTAMP, "%d/%m/%Y %H:%M")
    assert coerced.values.iloc[0] == pd.Timestamp("2018-02-01 00:15")
    assert coerced.failed.tolist() == [False, True]  # ISO text does not fit a declared non-ISO format


def test_dates_are_normalized_datetimes():
    values = coerce(["2025-03-01"], ColumnType.DATE).values
    assert values.iloc[0] == pd.Timestamp("2025-03-01 00:00")


def test_strings_keep_text_and_turn_every_null_into_none():
    coerced = coerce_column(pd.Series(["a", np.nan, None, "b"], dtype=object), ColumnType.STRING)
    assert coerced.values.tolist() == ["a", None, None, "b"]
    assert not coerced.failed.any()


def test_non_text_input_is_rendered_as_text():
    assert as_text(pd.Series([1, None, 3], dtype="Int64")).tolist() == ["1", None, "3"]


def test_typed_literal():
    assert typed_literal("1", ColumnType.INTEGER) == 1
    assert typed_literal("0.5", ColumnType.FLOAT) == 0.5
    with pytest.raises(ValueError, match="not a integer"):
        typed_literal("x", ColumnType.INTEGER)


@given(st.lists(st.integers(min_value=-(2**62), max_value=2**62), max_size=20))
def test_integer_text_round_trips(values):
    coerced = coerce([str(v) for v in values], ColumnType.INTEGER)
    assert not coerced.failed.any()
    assert coerced.values.tolist() == values


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=20))
def test_float_text_round_trips(values):
    coerced = coerce([repr(v) for v in values], ColumnType.FLOAT)
    assert not coerced.failed.any()
    assert coerced.values.tolist() == values
