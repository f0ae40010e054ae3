"""Day-ahead energy features: slot arithmetic, lags, the steel midnight fix, and no look-ahead past the origin."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.consumption_features import (
    DEFAULT_FEATURES,
    ENERGY_READINGS,
    SLOTS_PER_DAY,
    STEEL_ENERGY,
    build_features,
    slot_of,
    steel_readings,
)


def _meters(days: int = 30, meters: tuple[str, ...] = ("EM-L1", "EM-L2"), seed: int = 0) -> pd.DataFrame:
    """Quarter-hour readings with a daily profile, a weekend dip and noise, ts at each interval's end."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2025-03-03 00:15", periods=days * SLOTS_PER_DAY, freq="15min")
    frames = []
    for i, meter in enumerate(meters):
        start = ts - pd.Timedelta(minutes=15)
        level = 20 + 5 * i + 8 * np.sin(2 * np.pi * (start.hour + start.minute / 60) / 24)
        level = level * np.where(start.weekday >= 5, 0.5, 1.0) + rng.normal(0, 0.5, ts.size)
        frames.append(pd.DataFrame({"meter_id": meter, "line_id": f"L{i + 1}", "ts": ts, "kwh": level}))
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize(
    ("ts", "day", "slot"),
    [
        ("2025-03-03 00:15", "2025-03-03", 0),
        ("2025-03-03 06:15", "2025-03-03", 24),
        ("2025-03-04 00:00", "2025-03-03", 95),
    ],
)
def test_a_reading_belongs_to_the_interval_it_ends(ts: str, day: str, slot: int) -> None:
    days, slots = slot_of(pd.Series(pd.to_datetime([ts])))
    assert (days.iloc[0], slots.iloc[0]) == (pd.Timestamp(day), slot)


def test_off_grid_timestamps_are_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"ts: .*15-minute"):
        slot_of(pd.Series(pd.to_datetime(["2025-03-03 00:20"])))


def test_duplicate_readings_are_refused() -> None:
    readings = _meters(days=2, meters=("EM-L1",))
    with pytest.raises(ValueError, match="duplicate"):
        build_features(pd.concat([readings, readings.head(1)]), ENERGY_READINGS)


def test_steel_midnight_rows_move_to_the_end_of_their_day() -> None:
    steel = pd.DataFrame(
        {
            "ts": pd.to_datetime(["2018-01-01 23:45", "2018-01-01 00:00", "2018-01-02 00:15"]),
            "usage_kwh": [3.67, 3.42, 3.2],
            "nsm": pd.array([85500, 0, 900], dtype="Int64"),
            "co2_t": [0.0, 0.0, 0.0],
        }
    )
    out = steel_readings(steel)
    assert list(out["ts"]) == list(
        pd.to_datetime(["2018-01-01 23:45", "2018-01-02 00:00", "2018-01-02 00:15"])
    )
    assert list(out.columns) == ["ts", "usage_kwh"]  # measured-with-target columns never pass through


def test_lags_are_the_same_slot_on_earlier_days() -> None:
    readings = _meters()
    target = pd.Timestamp("2025-03-24")
    features = build_features(readings, ENERGY_READINGS, [target], series=["EM-L2"]).set_index("slot")
    values = readings[readings["meter_id"] == "EM-L2"].set_index("ts")["kwh"]
    for slot in (0, 40, 95):
        end = target + pd.Timedelta(minutes=15 * (slot + 1))
        assert features.loc[slot, "target"] == values[end]
        assert features.loc[slot, "lag_1d"] == values[end - pd.Timedelta(days=1)]
        assert features.loc[slot, "lag_7d"] == values[end - pd.Timedelta(days=7)]
        assert features.loc[slot, "lag_14d"] == values[end - pd.Timedelta(days=14)]
        week = [values[end - pd.Timedelta(days=k)] for k in range(1, 8)]
        assert features.loc[slot, "mean_7d"] == pytest.approx(np.mean(week))
    assert (
        features["last_value"].eq(values[target]).all()
    )  # 23:45-24:00 of the day before, read at the origin
    assert (features["ts"] == target + pd.to_timedelta((features.index + 1) * 15, unit="min")).all()


def test_no_look_ahead_past_the_origin() -> None:
    readings = _meters()
    target = pd.Timestamp("2025-03-20")
    full = build_features(readings, ENERGY_READINGS, [target])
    known = readings[readings["ts"] <= target]
    changed = readings.copy()
    later = changed["ts"] > target
    changed.loc[later, "kwh"] = changed.loc[later, "kwh"] * 10 + 99  # the future must not leak into features
    for other in (
        build_features(known, ENERGY_READINGS, [target]),
        build_features(changed, ENERGY_READINGS, [target]),
    ):
        pd.testing.assert_frame_equal(full[list(DEFAULT_FEATURES)], other[list(DEFAULT_FEATURES)])
    assert build_features(known, ENERGY_READINGS, [target])["target"].isna().all()


def test_missing_history_is_nan_not_a_made_up_value() -> None:
    features = build_features(_meters(days=10), ENERGY_READINGS, [pd.Timestamp("2025-03-12")])
    assert features["lag_7d"].notna().all()
    assert features["lag_14d"].isna().all() and features["lag_28d"].isna().all()


def test_one_row_set_per_series_and_day_and_the_next_day_by_default() -> None:
    readings = _meters(days=5)
    features = build_features(readings, ENERGY_READINGS)
    assert len(features) == 2 * 6 * SLOTS_PER_DAY  # five days plus the day after the last reading
    assert features.groupby(["series", "target_day"]).size().eq(SLOTS_PER_DAY).all()
    assert set(features["group"]) == {"L1", "L2"}


def test_single_series_table_needs_no_series_column() -> None:
    ts = pd.date_range("2018-01-01 00:15", periods=3 * SLOTS_PER_DAY, freq="15min")
    steel = pd.DataFrame({"ts": ts, "usage_kwh": np.arange(ts.size, dtype=float)})
    features = build_features(steel, STEEL_ENERGY, [pd.Timestamp("2018-01-03")])
    assert len(features) == SLOTS_PER_DAY
    assert features["lag_2d"].tolist() == list(np.arange(SLOTS_PER_DAY, dtype=float))


def test_missing_column_is_named() -> None:
    with pytest.raises(ValueError, match="kwh: required column"):
        build_features(_meters(days=2).drop(columns=["kwh"]), ENERGY_READINGS)
