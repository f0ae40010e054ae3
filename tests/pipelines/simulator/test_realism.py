"""Model-behaviour tier: the simulated plant has the structure the forecasters are meant to learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from pipelines.simulator import SimulationConfig, simulate


@pytest.fixture(scope="module")
def history():
    return simulate(SimulationConfig(days=42, seed=11))


def test_same_seed_gives_identical_tables_and_another_seed_does_not(history):
    again = simulate(SimulationConfig(days=42, seed=11))
    for name, frame in history.tables.items():
        pd.testing.assert_frame_equal(frame, again.tables[name])
    assert history.personal_truth == again.personal_truth
    other = simulate(SimulationConfig(days=42, seed=12))
    assert not other.tables["sensor_readings"].equals(history.tables["sensor_readings"])


def test_failing_within_the_next_shift_is_a_minority_class(history):
    events = history.tables["machine_events"]
    down = events[events["state"] == "down"]
    t0 = pd.Timestamp(history.config.start) + pd.Timedelta(hours=6)
    shift_no = (down["started_at"] - t0) // pd.Timedelta(hours=8)
    positives = len(set(zip(down["machine_id"], shift_no, strict=True)))
    machine_shifts = len(history.tables["machines"]) * history.config.days * 3
    assert 0.03 <= positives / machine_shifts <= 0.10


def test_down_events_carry_the_failure_alarm_and_are_followed_by_maintenance(history):
    events = history.tables["machine_events"].sort_values(["machine_id", "started_at"], kind="stable")
    for _, group in events.groupby("machine_id"):
        states = group["state"].tolist()
        codes = group["alarm_code"].tolist()
        for i, state in enumerate(states[:-1]):
            if state == "down":
                assert states[i + 1] == "maintenance"
                assert codes[i] is not None
    modes = history.failures.set_index(["machine_id", "failed_at"])["mode"]
    down = events[events["state"] == "down"]
    for machine_id, at, code in zip(down["machine_id"], down["started_at"], down["alarm_code"], strict=True):
        mode = modes[(machine_id, at)]
        assert code[1] == {"tool_wear": "1", "overstrain": "2", "power": "3", "heat_dissipation": "4",
                           "degradation": "5", "random": "9"}[mode]  # fmt: skip


def test_failures_are_preceded_by_their_physics(history):
    sensors = history.tables["sensor_readings"]
    running = sensors[sensors["speed_rpm"] > 0]
    by_machine = {m: g.set_index("ts") for m, g in running.groupby("machine_id")}
    wear_before, vib_before = {}, {}
    for machine_id, at, mode in history.failures[["machine_id", "failed_at", "mode"]].itertuples(index=False):
        window = by_machine[machine_id].loc[at - pd.Timedelta(hours=4) : at - pd.Timedelta(minutes=1)]
        if len(window):
            wear_before.setdefault(mode, []).append(window["tool_wear_min"].max())
            vib_before.setdefault(mode, []).append(window["vibration_mm_s"].mean())
    assert np.mean(wear_before["tool_wear"]) > 200 > running["tool_wear_min"].mean()
    assert np.mean(vib_before["degradation"]) > running["vibration_mm_s"].mean() + 1.0


def test_sensors_follow_the_physics(history):
    s = history.tables["sensor_readings"]
    hourly = s.groupby(s["ts"].dt.hour)["air_temp_k"].mean()
    assert hourly.loc[14] - hourly.loc[3] > 2.0  # daily seasonality
    running = s[s["speed_rpm"] > 0]
    assert ((running["process_temp_k"] - running["air_temp_k"]).mean()) == pytest.approx(10, abs=1.0)
    assert np.corrcoef(running["speed_rpm"], running["torque_nm"])[0, 1] < -0.2
    # tool wear grows with running time and is reset at tool changes
    one = s[s["machine_id"] == "M-01"]["tool_wear_min"].to_numpy()
    assert (np.diff(one) < 0).sum() > history.config.days


def test_yield_falls_with_material_lot_quality(history):
    orders = history.tables["production_orders"]
    done = orders[orders["status"].isin(["COMPLETED", "CLOSED"])].copy()
    first_lot = history.tables["material_consumption"].groupby("order_id")["lot_id"].first()
    quality = history.lots.set_index("lot_id")["quality"]
    done["quality"] = done["order_id"].map(first_lot).map(quality)
    done["yield"] = done["good_qty"].astype(float) / done["started_qty"].astype(float)
    assert done[["yield", "quality"]].corr().iloc[0, 1] > 0.25


def test_order_statuses_and_nulls_are_consistent(history):
    orders = history.tables["production_orders"]
    done = orders["status"].isin(["COMPLETED", "CLOSED"])
    assert orders.loc[done, ["started_qty", "good_qty", "scrap_qty", "actual_end"]].notna().all().all()
    assert (
        orders.loc[done, "good_qty"] + orders.loc[done, "scrap_qty"] == orders.loc[done, "started_qty"]
    ).all()
    not_started = orders["status"].isin(["RELEASED", "CANCELLED"])
    assert orders.loc[not_started, ["started_qty", "actual_start", "actual_end"]].isna().all().all()
    ops = history.tables["operations"]
    roster = set(history.tables["employees"]["employee_no"])
    assert set(ops["operator_id"].dropna()) <= roster
    names = set(history.tables["employees"]["first_name"] + " " + history.tables["employees"]["last_name"])
    assert set(orders["planner"]) <= names


def test_energy_follows_the_working_calendar(history):
    e = history.tables["energy_readings"]
    day = (e["ts"] - pd.Timedelta(minutes=15) - pd.Timedelta(hours=6)).dt.weekday
    assert e.loc[day < 5, "kwh"].mean() > 1.5 * e.loc[day == 6, "kwh"].mean()
    assert set(e["meter_id"]) == {"EM-L1", "EM-L2"}
    assert (e.groupby("meter_id")["ts"].diff().dropna() == pd.Timedelta(minutes=15)).all()


def test_inspection_results_agree_with_limits(history):
    i = history.tables["inspections"]
    inside = (i["measured_value"] >= i["lower_limit"]) & (i["measured_value"] <= i["upper_limit"])
    assert ((i["result"] == "PASS") == inside).all()
    assert 0 < (i["result"] == "FAIL").mean() < 0.5


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("sensor_interval_min", 7, "sensor_interval_min"),
        ("days", 0, "days"),
        ("employees", 5, "employees"),
        ("defect_rate", 0.9, "defect_rate"),
        ("plant_domain", "Not A Domain", "plant_domain"),
    ],
)
def test_bad_config_names_the_field(field, value, needle):
    with pytest.raises(ValidationError, match=needle):
        SimulationConfig(**{field: value})


def test_config_is_frozen():
    config = SimulationConfig()
    with pytest.raises(ValidationError):
        config.days = 3  # type: ignore[misc]
