"""Failure features and labels: forecast rows, label windows, window statistics, and no look-ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.failure_features import (
    AI4I_FORBIDDEN,
    ai4i_features,
    build_failure_features,
    failure_labels,
    feature_names,
    forecast_rows,
    machine_state_at,
    shift_starts,
)
from pipelines.simulator import SimulationConfig, simulate

T0 = pd.Timestamp("2025-03-03 06:00")  # a Monday shift start


def _machines() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "machine_id": ["M-01", "M-02"],
            "work_center_id": ["WC-1", "WC-2"],
            "line_id": ["L1", "L2"],
            "machine_type": ["cnc_mill", "press"],
            "commissioned_on": pd.to_datetime(["2015-01-01", "2016-01-01"]),
        }
    )


def _events(rows: list[tuple[str, str, str | None, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["machine_id", "state", "alarm_code", "started_at"])
    frame["event_id"] = [f"EV-{i:07d}" for i in range(len(frame))]
    frame["started_at"] = pd.to_datetime(frame["started_at"])
    frame["ended_at"] = pd.NaT
    return frame


def _sensors(machine_id: str, start: pd.Timestamp, minutes: int, **signals: np.ndarray) -> pd.DataFrame:
    n = minutes // 10
    base = {
        "air_temp_k": np.full(n, 300.0),
        "process_temp_k": np.full(n, 310.0),
        "speed_rpm": np.full(n, 1500.0),
        "torque_nm": np.full(n, 40.0),
        "tool_wear_min": np.arange(n) * 10.0,
        "vibration_mm_s": np.full(n, 2.0),
    }
    base.update(signals)
    return pd.DataFrame(
        {"machine_id": machine_id, "ts": pd.date_range(start, periods=n, freq="10min"), **base}
    )


def _tables(sensors: pd.DataFrame, events: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {"machines": _machines(), "sensor_readings": sensors, "machine_events": events}


@pytest.fixture(scope="module")
def plant() -> dict[str, pd.DataFrame]:
    """A small simulated month: one line of three machines."""
    return simulate(SimulationConfig(seed=5, days=30, lines=1, machines_per_line=3)).tables


def test_shift_starts_are_06_14_22_for_every_machine() -> None:
    rows = shift_starts(T0, T0 + pd.Timedelta(days=1), ["M-01", "M-02"])
    assert len(rows) == 2 * 4  # 06, 14, 22, next 06 for each machine
    assert sorted(set(rows["forecast_at"].dt.hour)) == [6, 14, 22]
    assert rows["forecast_at"].max() == T0 + pd.Timedelta(days=1)


def test_rows_where_the_machine_is_down_or_in_maintenance_are_excluded() -> None:
    events = _events(
        [
            ("M-01", "running", None, "2025-03-03 00:00"),
            ("M-01", "down", "E101", "2025-03-03 13:00"),
            ("M-01", "maintenance", None, "2025-03-03 14:00"),  # starts exactly at the forecast
            ("M-01", "running", None, "2025-03-03 15:00"),
            ("M-02", "idle", None, "2025-03-03 00:00"),
        ]
    )
    sensors = pd.concat([_sensors(m, T0 - pd.Timedelta(hours=6), 24 * 60) for m in ("M-01", "M-02")])
    rows = forecast_rows(_tables(sensors, events), start=T0, end=T0 + pd.Timedelta(hours=8))
    kept = set(zip(rows["machine_id"], rows["forecast_at"], strict=True))
    assert ("M-01", T0 + pd.Timedelta(hours=8)) not in kept
    assert kept == {("M-01", T0), ("M-02", T0), ("M-02", T0 + pd.Timedelta(hours=8))}
    state = machine_state_at(events, pd.DataFrame({"machine_id": ["M-01"], "forecast_at": [T0]}))
    assert state.tolist() == ["running"]


@pytest.mark.parametrize(
    ("offset", "state", "alarm", "expected"),
    [
        (pd.Timedelta(0), "down", "E101", 0),  # at t itself: not in (t, t+8h]
        (pd.Timedelta(minutes=10), "down", "E101", 1),
        (pd.Timedelta(hours=8), "down", "A501", 1),  # the window's end is included
        (pd.Timedelta(hours=8, minutes=10), "down", "E101", 0),
        (pd.Timedelta(hours=2), "down", None, 0),  # down without an alarm code is not a failure
        (pd.Timedelta(hours=2), "maintenance", None, 0),
        (-pd.Timedelta(hours=2), "down", "E101", 0),
    ],
)
def test_label_window_is_t_to_t_plus_8h(
    offset: pd.Timedelta, state: str, alarm: str | None, expected: int
) -> None:
    events = _events([("M-01", state, alarm, str(T0 + offset))])
    rows = pd.DataFrame({"machine_id": ["M-01", "M-02"], "forecast_at": [T0, T0]})
    assert failure_labels(events, rows).tolist() == [expected, 0]


def test_window_statistics_use_running_readings_only_and_end_at_the_forecast() -> None:
    n = 12 * 6  # 12 h of 10-minute readings ending at T0 + 50 min
    speed = np.full(n, 1500.0)
    speed[-3:] = 0.0  # the last 30 minutes before the forecast the machine stood
    vibration = np.linspace(1.0, 8.1, n)
    sensors = _sensors("M-01", T0 - pd.Timedelta(hours=11), n * 10, speed_rpm=speed, vibration_mm_s=vibration)
    events = _events([("M-01", "running", None, "2025-03-02 00:00")])
    at = T0
    rows = pd.DataFrame({"machine_id": ["M-01"], "forecast_at": [at]})
    f = build_failure_features(_tables(sensors, events), rows).iloc[0]
    ts = sensors["ts"]
    upto = sensors[(ts <= at) & (ts > at - pd.Timedelta(hours=1)) & (sensors["speed_rpm"] > 0)]
    assert f["vibration_mm_s_mean_1h"] == pytest.approx(upto["vibration_mm_s"].mean())
    assert f["vibration_mm_s_max_1h"] == pytest.approx(upto["vibration_mm_s"].max())
    assert f["vibration_mm_s_slope_1h"] == pytest.approx(0.1 * 6, rel=1e-6)  # 0.1 per reading, 6 per hour
    assert f["tool_wear_min_slope_8h"] == pytest.approx(60.0)
    assert f["vibration_mm_s_last"] == pytest.approx(sensors.loc[ts == at, "vibration_mm_s"].iloc[0])
    assert f["running_share_1h"] == pytest.approx(len(upto) / 6)
    assert f["power_w_last"] == pytest.approx(40.0 * 1500 * 2 * np.pi / 60)
    assert f["temp_delta_k_last"] == pytest.approx(10.0)
    assert (f["machine_type"], f["line_id"], f["hour_of_day"], f["day_of_week"]) == ("cnc_mill", "L1", 6, 0)


def test_event_features_count_downs_before_the_forecast() -> None:
    events = _events(
        [
            ("M-01", "down", "E101", str(T0 - pd.Timedelta(days=3))),
            ("M-01", "maintenance", None, str(T0 - pd.Timedelta(days=3) + pd.Timedelta(hours=1))),
            ("M-01", "down", "E201", str(T0 - pd.Timedelta(hours=5))),
            ("M-01", "maintenance", None, str(T0 - pd.Timedelta(hours=4))),
            ("M-01", "running", None, str(T0 - pd.Timedelta(hours=3))),
            ("M-01", "down", "E301", str(T0 + pd.Timedelta(hours=1))),  # after the forecast: ignored
        ]
    )
    sensors = _sensors("M-01", T0 - pd.Timedelta(days=4), 5 * 24 * 60)
    rows = pd.DataFrame({"machine_id": ["M-01"], "forecast_at": [T0]})
    f = build_failure_features(_tables(sensors, events), rows).iloc[0]
    assert f["minutes_since_down"] == 300
    assert f["minutes_since_maintenance"] == 240
    assert (f["down_events_24h"], f["down_events_7d"]) == (1, 2)
    assert f["running_hours_since_down"] == pytest.approx(5.0)


def test_unknown_machine_gets_missing_values_not_an_error() -> None:
    sensors = _sensors("M-01", T0 - pd.Timedelta(hours=2), 180)
    rows = pd.DataFrame({"machine_id": ["M-99"], "forecast_at": [T0]})
    f = build_failure_features(_tables(sensors, _events([])), rows)
    assert f[["tool_wear_min_last", "minutes_since_down"]].isna().all(axis=None)
    assert list(f.columns) == feature_names()


def test_missing_column_is_named() -> None:
    sensors = _sensors("M-01", T0, 60).drop(columns="vibration_mm_s")
    rows = pd.DataFrame({"machine_id": ["M-01"], "forecast_at": [T0]})
    with pytest.raises(ValueError, match=r"sensor_readings: missing column.*vibration_mm_s"):
        build_failure_features(_tables(sensors, _events([])), rows)


def _as_of(tables: dict[str, pd.DataFrame], t: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """The tables as the MES held them at t: later readings and events absent, open events without an end."""
    sensors = tables["sensor_readings"]
    events = tables["machine_events"]
    events = events[events["started_at"] <= t].copy()
    events.loc[events["ended_at"] > t, "ended_at"] = pd.NaT
    return {**tables, "sensor_readings": sensors[sensors["ts"] <= t], "machine_events": events}


def test_no_look_ahead_features_equal_those_from_tables_cut_at_the_forecast(plant) -> None:
    rows = forecast_rows(plant)
    full = build_failure_features(plant, rows)
    for t in rows["forecast_at"].drop_duplicates().iloc[[5, 20, 40, 60]]:
        at_t = rows["forecast_at"] == t
        cut = build_failure_features(_as_of(plant, t), rows[at_t])
        pd.testing.assert_frame_equal(cut, full[at_t])


def test_no_look_ahead_future_changes_do_not_move_features(plant) -> None:
    rows = forecast_rows(plant)
    t = rows["forecast_at"].drop_duplicates().iloc[30]
    at_t = rows[rows["forecast_at"] == t]
    sensors = plant["sensor_readings"].copy()
    later = sensors["ts"] > t
    sensors.loc[later, ["tool_wear_min", "vibration_mm_s", "torque_nm"]] *= 10
    events = plant["machine_events"].copy()
    extra = events.iloc[:3].assign(state="down", alarm_code="E101", started_at=t + pd.Timedelta(minutes=10))
    changed = {**plant, "sensor_readings": sensors, "machine_events": pd.concat([events, extra])}
    pd.testing.assert_frame_equal(build_failure_features(changed, at_t), build_failure_features(plant, at_t))


def test_one_row_gets_the_features_it_gets_among_many(plant) -> None:
    rows = forecast_rows(plant)
    full = build_failure_features(plant, rows)
    for i in (0, 17, len(rows) - 1):
        one = build_failure_features(plant, rows.iloc[[i]])
        pd.testing.assert_frame_equal(one, full.iloc[[i]])


def test_simulated_labels_match_the_failures_the_simulator_planted(plant) -> None:
    rows = forecast_rows(plant)
    labels = failure_labels(plant["machine_events"], rows)
    assert 0 < labels.mean() < 0.3
    downs = plant["machine_events"].query("state == 'down'")
    first = downs.sort_values("started_at").iloc[0]
    window = rows[
        (rows["machine_id"] == first["machine_id"])
        & (rows["forecast_at"] < first["started_at"])
        & (rows["forecast_at"] >= first["started_at"] - pd.Timedelta(hours=8))
    ]
    assert labels[window.index].eq(1).all()


def test_ai4i_features_never_read_label_or_failure_modes() -> None:
    steps = pd.DataFrame(
        {
            "air_temp_k": [300.0],
            "process_temp_k": [310.5],
            "speed_rpm": [1400.0],
            "torque_nm": [50.0],
            "tool_wear_min": [100.0],
            "product_type": ["L"],
        }
    )
    features = ai4i_features(steps)  # works without any label column
    assert not set(AI4I_FORBIDDEN) & set(features.columns)
    row = features.iloc[0]
    assert row["temp_delta_k"] == pytest.approx(10.5)
    assert row["strain_minnm"] == pytest.approx(5000.0)
    assert row["power_w"] == pytest.approx(50.0 * 1400 * 2 * np.pi / 60)
