"""Features and labels of the failure forecaster, shared by training and serving.

A forecast is made for one machine at one moment ``forecast_at`` (a shift start). Every feature is computed from
rows known at or before that moment: sensor readings with ``ts <= forecast_at`` and machine events with
``started_at <= forecast_at`` (an event's ``ended_at`` is never read, since it may lie after the forecast).
The same function serves one row or many, so a served prediction sees exactly the features training saw.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

SHIFT_START_HOURS = (6, 14, 22)
HORIZON = pd.Timedelta(hours=8)
WINDOWS: dict[str, pd.Timedelta] = {"1h": pd.Timedelta(hours=1), "8h": pd.Timedelta(hours=8)}
SIGNALS = (
    "tool_wear_min",
    "torque_nm",
    "speed_rpm",
    "power_w",
    "temp_delta_k",
    "vibration_mm_s",
    "strain_minnm",
)
CATEGORICAL = ("machine_type", "line_id")
NOT_RUNNING_STATES = ("down", "maintenance")
ROW_KEYS = ("machine_id", "forecast_at")
# Bounded memory when gathering sensor windows: rows x window length per chunk.
_GATHER_CELLS = 2_000_000


def feature_names() -> list[str]:
    """Names of the simulator failure features, in the order the forecaster sees them."""
    names = ["hour_of_day", "day_of_week", *CATEGORICAL]
    names += [f"{s}_last" for s in SIGNALS] + ["minutes_since_reading"]
    for window in WINDOWS:
        names += [f"{s}_{stat}_{window}" for s in SIGNALS for stat in ("mean", "max", "slope")]
        names.append(f"running_share_{window}")
    names += [
        "minutes_since_down",
        "minutes_since_maintenance",
        "down_events_24h",
        "down_events_7d",
        "running_hours_since_down",
    ]
    return names


# --- forecast rows and labels -------------------------------------------------------------------------------


def shift_starts(
    start: pd.Timestamp,
    end: pd.Timestamp,
    machine_ids: Sequence[str],
    hours: Sequence[int] = SHIFT_START_HOURS,
) -> pd.DataFrame:
    """Every shift start in [start, end] for every machine, as ``machine_id, forecast_at`` rows."""
    days = pd.date_range(pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize(), freq="D")
    times = pd.DatetimeIndex(sorted(day + pd.Timedelta(hours=h) for day in days for h in hours))
    times = times[(times >= start) & (times <= end)]
    ids = np.asarray(list(machine_ids), dtype=object)
    return pd.DataFrame(
        {
            "machine_id": np.repeat(ids, len(times)),
            "forecast_at": np.tile(times.to_numpy(dtype="datetime64[ns]"), len(ids)),
        }
    )


def machine_state_at(events: pd.DataFrame, rows: pd.DataFrame) -> pd.Series:
    """The state each row's machine is in at ``forecast_at`` (latest event started at or before it; NA if none)."""
    _require(events, ("machine_id", "state", "started_at"), "machine_events")
    left = _keys(rows).reset_index().sort_values("forecast_at", kind="stable")
    right = (
        events[["machine_id", "state", "started_at"]]
        .assign(started_at=lambda f: pd.to_datetime(f["started_at"]))
        .dropna(subset=["started_at"])
        .sort_values("started_at", kind="stable")
    )
    merged = pd.merge_asof(
        left, right, left_on="forecast_at", right_on="started_at", by="machine_id", direction="backward"
    )
    return pd.Series(merged["state"].to_numpy(), index=merged["index"].to_numpy()).reindex(rows.index)


def forecast_rows(
    tables: Mapping[str, pd.DataFrame],
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    horizon: pd.Timedelta = HORIZON,
) -> pd.DataFrame:
    """Shift starts per machine where the machine is neither down nor in maintenance.

    Without ``end`` the last forecast is one horizon before the last sensor reading, so every label window is
    fully observed.
    """
    sensors = tables["sensor_readings"]
    _require(sensors, ("machine_id", "ts"), "sensor_readings")
    ts = pd.to_datetime(sensors["ts"])
    start = pd.Timestamp(start) if start is not None else ts.min()
    end = pd.Timestamp(end) if end is not None else ts.max() - horizon
    machine_ids = sorted(tables["machines"]["machine_id"].dropna().unique())
    rows = shift_starts(start, end, machine_ids)
    state = machine_state_at(tables["machine_events"], rows)
    return rows[~state.isin(NOT_RUNNING_STATES).to_numpy()].reset_index(drop=True)


def failure_labels(events: pd.DataFrame, rows: pd.DataFrame, horizon: pd.Timedelta = HORIZON) -> pd.Series:
    """1 when the machine has a ``down`` event with an alarm code starting in (forecast_at, forecast_at + horizon]."""
    _require(events, ("machine_id", "state", "alarm_code", "started_at"), "machine_events")
    downs = events[(events["state"] == "down") & events["alarm_code"].notna()]
    starts = _times_by_machine(downs, "started_at")
    keys = _keys(rows)
    label = np.zeros(len(keys), dtype=np.int64)
    for machine_id, idx in keys.groupby("machine_id", sort=False).indices.items():
        times = starts.get(machine_id)
        if times is None:
            continue
        t = keys["forecast_at"].to_numpy(dtype="datetime64[ns]")[idx]
        after = np.searchsorted(times, t, side="right")
        until = np.searchsorted(times, t + horizon.to_timedelta64(), side="right")
        label[idx] = (until > after).astype(np.int64)
    return pd.Series(label, index=rows.index, name="failure")


# --- features ----------------------------------------------------------------------------------------------


def build_failure_features(tables: Mapping[str, pd.DataFrame], rows: pd.DataFrame) -> pd.DataFrame:
    """Feature frame (index of ``rows``) from ``sensor_readings``, ``machine_events`` and ``machines``.

    Args:
        tables: curated tables by name; rows after a forecast time may be present and are ignored.
        rows: ``machine_id`` and ``forecast_at`` of each forecast (one row or many).
    """
    keys = _keys(rows)
    out = pd.DataFrame(index=rows.index)
    at = pd.DatetimeIndex(keys["forecast_at"])
    out["hour_of_day"] = at.hour.to_numpy(dtype=np.int64)
    out["day_of_week"] = at.dayofweek.to_numpy(dtype=np.int64)
    out = out.join(_static_features(tables["machines"], keys))
    out = out.join(_sensor_features(tables["sensor_readings"], keys))
    out = out.join(_event_features(tables["machine_events"], tables["sensor_readings"], keys))
    return out[feature_names()]


def derived_signals(sensors: pd.DataFrame) -> pd.DataFrame:
    """Sensor readings with power [W], process-air difference [K] and strain (tool wear x torque) added."""
    _require(
        sensors,
        ("air_temp_k", "process_temp_k", "speed_rpm", "torque_nm", "tool_wear_min", "vibration_mm_s"),
        "sensor_readings",
    )
    speed = _float(sensors["speed_rpm"])
    torque = _float(sensors["torque_nm"])
    wear = _float(sensors["tool_wear_min"])
    return pd.DataFrame(
        {
            "tool_wear_min": wear,
            "torque_nm": torque,
            "speed_rpm": speed,
            "power_w": torque * speed * 2 * np.pi / 60,
            "temp_delta_k": _float(sensors["process_temp_k"]) - _float(sensors["air_temp_k"]),
            "vibration_mm_s": _float(sensors["vibration_mm_s"]),
            "strain_minnm": wear * torque,
        },
        index=sensors.index,
    )


def _static_features(machines: pd.DataFrame, keys: pd.DataFrame) -> pd.DataFrame:
    _require(machines, ("machine_id", *CATEGORICAL), "machines")
    master = machines.drop_duplicates("machine_id").set_index("machine_id")[list(CATEGORICAL)]
    found = master.reindex(keys["machine_id"].to_numpy())
    return pd.DataFrame({c: found[c].astype(object).to_numpy() for c in CATEGORICAL}, index=keys.index)


def _sensor_features(sensors: pd.DataFrame, keys: pd.DataFrame) -> pd.DataFrame:
    """Latest values and running-only window statistics of each signal, windows ending at forecast_at."""
    _require(sensors, ("machine_id", "ts"), "sensor_readings")
    frame = derived_signals(sensors)
    frame["machine_id"] = sensors["machine_id"].to_numpy()
    frame["ts"] = pd.to_datetime(sensors["ts"]).to_numpy(dtype="datetime64[ns]")
    frame = frame.dropna(subset=["ts"]).sort_values(["machine_id", "ts"], kind="stable")
    columns = [n for n in feature_names() if n in _sensor_feature_set()]
    out = np.full((len(keys), len(columns)), np.nan)
    col = {name: i for i, name in enumerate(columns)}
    groups = frame.groupby("machine_id", sort=False).indices
    at_all = keys["forecast_at"].to_numpy(dtype="datetime64[ns]")
    for machine_id, idx in keys.groupby("machine_id", sort=False).indices.items():
        readings = groups.get(machine_id)
        if readings is None:
            continue
        m = frame.iloc[readings]
        ts = m["ts"].to_numpy(dtype="datetime64[ns]")
        values = m[list(SIGNALS)].to_numpy(dtype=float)
        running = values[:, SIGNALS.index("speed_rpm")] > 0
        at = at_all[idx]
        hi = np.searchsorted(ts, at, side="right")  # readings [.., hi) are at or before forecast_at
        has = hi > 0
        last = np.where(has, hi - 1, 0)
        for j, s in enumerate(SIGNALS):
            out[idx, col[f"{s}_last"]] = np.where(has, values[last, j], np.nan)
        out[idx, col["minutes_since_reading"]] = np.where(
            has, (at - ts[last]) / np.timedelta64(1, "m"), np.nan
        )
        for name, width in WINDOWS.items():
            lo = np.searchsorted(ts, at - width.to_timedelta64(), side="right")
            stats = _window_stats(ts, values, running, at, lo, hi)
            for j, s in enumerate(SIGNALS):
                for stat in ("mean", "max", "slope"):
                    out[idx, col[f"{s}_{stat}_{name}"]] = stats[stat][:, j]
            n_all = hi - lo
            with np.errstate(invalid="ignore", divide="ignore"):
                out[idx, col[f"running_share_{name}"]] = np.where(n_all > 0, stats["running"] / n_all, np.nan)
    return pd.DataFrame(out, index=keys.index, columns=columns)


def _sensor_feature_set() -> set[str]:
    names = {f"{s}_last" for s in SIGNALS} | {"minutes_since_reading"}
    for window in WINDOWS:
        names |= {f"{s}_{stat}_{window}" for s in SIGNALS for stat in ("mean", "max", "slope")}
        names.add(f"running_share_{window}")
    return names


def _window_stats(
    ts: np.ndarray, values: np.ndarray, running: np.ndarray, at: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> dict[str, np.ndarray]:
    """Mean, max and least-squares slope (per hour) over running readings in [lo, hi) of each forecast."""
    n_rows, n_sig = len(at), values.shape[1]
    result = {k: np.full((n_rows, n_sig), np.nan) for k in ("mean", "max", "slope")}
    result["running"] = np.zeros(n_rows)
    width = int((hi - lo).max()) if n_rows else 0
    if width == 0:
        return result
    step = max(1, _GATHER_CELLS // (width * n_sig))
    for a in range(0, n_rows, step):
        b = min(n_rows, a + step)
        pos = lo[a:b, None] + np.arange(width)[None, :]
        inside = pos < hi[a:b, None]
        pos = np.minimum(pos, len(ts) - 1)
        run = inside & running[pos]
        result["running"][a:b] = run.sum(axis=1)
        hours = (ts[pos] - at[a:b, None]) / np.timedelta64(1, "h")
        for j in range(n_sig):
            x = values[pos, j]
            ok = run & ~np.isnan(x)
            result["mean"][a:b, j], result["max"][a:b, j], result["slope"][a:b, j] = _masked_stats(
                hours, x, ok
            )
    return result


def _masked_stats(t: np.ndarray, x: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(ok, x, 0.0).sum(axis=1) / n
        top = np.where(ok, x, -np.inf).max(axis=1)
        t_mean = np.where(ok, t, 0.0).sum(axis=1) / n
        dt = np.where(ok, t - t_mean[:, None], 0.0)
        dx = np.where(ok, x - mean[:, None], 0.0)
        sxx = (dt * dt).sum(axis=1)
        slope = np.where((n >= 2) & (sxx > 0), (dt * dx).sum(axis=1) / sxx, np.nan)
    return np.where(n > 0, mean, np.nan), np.where(n > 0, top, np.nan), slope


def _event_features(events: pd.DataFrame, sensors: pd.DataFrame, keys: pd.DataFrame) -> pd.DataFrame:
    """Time since the last down / maintenance start, down counts, running hours since the last down."""
    _require(events, ("machine_id", "state", "started_at"), "machine_events")
    down = _times_by_machine(events[events["state"] == "down"], "started_at")
    maint = _times_by_machine(events[events["state"] == "maintenance"], "started_at")
    running_clock = _running_clock(sensors)
    names = [
        "minutes_since_down",
        "minutes_since_maintenance",
        "down_events_24h",
        "down_events_7d",
        "running_hours_since_down",
    ]
    out = pd.DataFrame(np.nan, index=keys.index, columns=names)
    at_all = keys["forecast_at"].to_numpy(dtype="datetime64[ns]")
    empty = np.array([], dtype="datetime64[ns]")
    for machine_id, idx in keys.groupby("machine_id", sort=False).indices.items():
        at = at_all[idx]
        d = down.get(machine_id, empty)
        k, last_down = _last_at_or_before(d, at)
        out.iloc[idx, 0] = (at - last_down) / np.timedelta64(1, "m")
        _, last_maint = _last_at_or_before(maint.get(machine_id, empty), at)
        out.iloc[idx, 1] = (at - last_maint) / np.timedelta64(1, "m")
        for col, days in ((2, 1), (3, 7)):
            out.iloc[idx, col] = k - np.searchsorted(d, at - np.timedelta64(days, "D"), side="right")
        clock = running_clock.get(machine_id)
        if clock is not None:
            out.iloc[idx, 4] = np.where(k > 0, clock(at) - clock(last_down), np.nan)
    return out


def _last_at_or_before(times: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Count of sorted ``times`` at or before each ``at``, and the latest of them (NaT when none)."""
    k = np.searchsorted(times, at, side="right")
    if times.size == 0:
        return k, np.full(at.shape, np.datetime64("NaT", "ns"))
    return k, np.where(k > 0, times[np.maximum(k - 1, 0)], np.datetime64("NaT", "ns"))


def _running_clock(sensors: pd.DataFrame) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Per machine, a function giving the running hours recorded by readings at or before each time."""
    ts = pd.to_datetime(sensors["ts"]).to_numpy(dtype="datetime64[ns]")
    running = (_float(sensors["speed_rpm"]) > 0).to_numpy()
    frame = pd.DataFrame({"machine_id": sensors["machine_id"].to_numpy(), "ts": ts, "running": running})
    frame = frame.dropna(subset=["ts"]).sort_values(["machine_id", "ts"], kind="stable")
    clocks = {}
    for machine_id, m in frame.groupby("machine_id", sort=False):
        times = m["ts"].to_numpy(dtype="datetime64[ns]")
        step_h = float(np.median(np.diff(times)) / np.timedelta64(1, "h")) if len(times) > 1 else 0.0
        cum = np.concatenate([[0.0], np.cumsum(m["running"].to_numpy()) * step_h])

        def clock(at: np.ndarray, times: np.ndarray = times, cum: np.ndarray = cum) -> np.ndarray:
            valid = ~np.isnat(at)
            hours = cum[np.searchsorted(times, np.where(valid, at, times[0]), side="right")]
            return np.where(valid, hours, np.nan)

        clocks[machine_id] = clock
    return clocks


# --- AI4I 2020 -----------------------------------------------------------------------------------------------

AI4I_LABEL = "machine_failure"
AI4I_FORBIDDEN = ("machine_failure", "twf", "hdf", "pwf", "osf", "rnf")
AI4I_FEATURES = (
    "air_temp_k",
    "process_temp_k",
    "speed_rpm",
    "torque_nm",
    "tool_wear_min",
    "product_type",
    "power_w",
    "temp_delta_k",
    "strain_minnm",
)


def ai4i_features(steps: pd.DataFrame) -> pd.DataFrame:
    """Physics features of ``ai4i_process_steps`` rows; the label and failure-mode flags are never read."""
    _require(
        steps,
        ("air_temp_k", "process_temp_k", "speed_rpm", "torque_nm", "tool_wear_min", "product_type"),
        "ai4i_process_steps",
    )
    speed = _float(steps["speed_rpm"])
    torque = _float(steps["torque_nm"])
    wear = _float(steps["tool_wear_min"])
    air = _float(steps["air_temp_k"])
    process = _float(steps["process_temp_k"])
    return pd.DataFrame(
        {
            "air_temp_k": air,
            "process_temp_k": process,
            "speed_rpm": speed,
            "torque_nm": torque,
            "tool_wear_min": wear,
            "product_type": steps["product_type"].astype(object),
            "power_w": torque * speed * 2 * np.pi / 60,
            "temp_delta_k": process - air,
            "strain_minnm": wear * torque,
        },
        index=steps.index,
    )[list(AI4I_FEATURES)]


# --- helpers -------------------------------------------------------------------------------------------------


def _keys(rows: pd.DataFrame) -> pd.DataFrame:
    _require(rows, ROW_KEYS, "forecast rows")
    keys = pd.DataFrame(
        {"machine_id": rows["machine_id"].astype(object), "forecast_at": pd.to_datetime(rows["forecast_at"])},
        index=rows.index,
    )
    if keys["forecast_at"].isna().any():
        raise ValueError("forecast_at: must not be null")
    return keys


def _times_by_machine(events: pd.DataFrame, column: str) -> dict[str, np.ndarray]:
    times = pd.to_datetime(events[column])
    frame = pd.DataFrame({"machine_id": events["machine_id"].to_numpy(), "t": times.to_numpy()}).dropna()
    frame = frame.sort_values("t", kind="stable")
    return {m: g["t"].to_numpy(dtype="datetime64[ns]") for m, g in frame.groupby("machine_id", sort=False)}


def _float(series: pd.Series) -> pd.Series:
    return pd.Series(pd.to_numeric(series).to_numpy(dtype=float, na_value=np.nan), index=series.index)


def _require(frame: pd.DataFrame, columns: Sequence[str], table: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{table}: missing column(s) {', '.join(missing)}")
