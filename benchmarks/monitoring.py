"""Monitoring cost: drift reports and gate evaluations over a week of one plant's served traffic.

Set-up (not timed): a trained installation (90 simulated days of a two-line plant, 12 machines and 2 energy
meters; ingest; train; a second version of each forecaster registered and promoted to challenger, so it is in
**shadow** and every logged request carries both outputs), then a week of that plant's traffic sent to the
running service over HTTP (``serving/server.py`` ServerProcess, ``serving/client.py``), replaying the last
``--days`` of the curated history. Volume assumption per week:

- failure: a status update per machine every 15 minutes, sent with the machine's features at that moment
  (12 machines x 96 a day x 7 = 8,064 requests); outcome: 1 if the machine failed within the next 8 hours;
- yield: one request per order released in the window (96 in the simulated week); outcome: good quantity of
  the orders closed by the end of the history;
- consumption: one day-ahead forecast per meter per day (2 meters x 7 = 14); outcome: the day's kWh;
- outcomes via ``/v1/outcomes``; a planner decides 60 % of the actionable recommendations (everything but
  ``no_action``) via ``/v1/feedback``: 75 % accept, 15 % reject, 10 % modify.

The service stamps each row with the time it answered, so the week arrives within a few minutes: the gate
window (the last ``MESOPS_MONITORING_WINDOW_DAYS`` of the phase) holds all of it, and ``days_in_phase`` reads
minutes (the verdicts are printed, but the benchmark is about their cost).

Timed, each step in a freshly spawned process (cold: the first pass, paying the imports and lazy start-up a
scheduled ``mesops gates evaluate`` pays; warm: the same pass again in that process), per model:

- drift: ``governance.drift.run_drift_report`` (Evidently, HTML + JSON written, a ``drift_reports`` row);
- signals: ``governance.signals.measure`` of every signal the gate names, without drift;
- gate: ``governance.gates.evaluate(record=False)``: subject, drift report, signals, verdict (no audit entry
  and no rollout change, so reruns are clean).

``total_s`` is what one monitoring run of the plant costs: the gate process's imports plus the three cold gate
evaluations. Target: under 30 s on this machine (2 cores).

    .venv/bin/python benchmarks/monitoring.py [--days 7] [--home PATH] [--keep]

Without ``--home`` the installation is built in a temporary folder (removed unless ``--keep``) with
MESOPS_PSEUDONYM_KEY set to a benchmark key unless already set. With ``--home`` (set MESOPS_PSEUDONYM_KEY as
for that home) the traffic is sent only when the current phase does not already hold a week of it, so a home
kept from an earlier run is measured again as it is. Ends with one JSON line of its figures.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mesops.settings import Settings, get_settings

# governance, pipelines, serving and Evidently are imported inside the functions that use them: the measuring
# processes re-import this file and must start cold (nothing heavy imported before their clock starts).

MODELS = ("failure", "yield", "consumption")
STEPS = ("drift", "signals", "gate")
MONITORING_MODULES = (
    "evidently",
    "evidently.metrics",
    "evidently.presets",
    "governance.drift",
    "governance.signals",
    "governance.gates",
)
BENCH_KEY = "benchmark-key-0123456789abcdef"
TARGET_S = 30.0
TICK = timedelta(minutes=15)  # a machine status update every quarter-hour
CLIENTS = 4  # concurrent MES / planner connections sending the week
DECIDE_SHARE = 0.6  # share of actionable recommendations a planner decides
DECISIONS = (("accept", "agreed"), ("reject", "wrong_prediction"), ("modify", "adjusted_quantity"))
DECISION_WEIGHTS = (0.75, 0.15, 0.10)


class BenchmarkError(RuntimeError):
    """The benchmark cannot run as asked: says what is wrong and what to do."""


# --- the installation -----------------------------------------------------------------------------------------
def build_home(root: Path) -> Settings:
    """A trained installation as the serving tests build it, with a second version of every forecaster."""
    from pipelines.runner import ingest_batches, train_models
    from pipelines.simulator import SimulationConfig, emit_extracts, simulate
    from pipelines.training import register_candidate

    os.environ["MESOPS_HOME"] = str(root)
    os.environ.setdefault("MESOPS_PSEUDONYM_KEY", BENCH_KEY)  # the server process reads the same key
    settings = get_settings()
    settings.ensure_dirs()
    history = simulate(SimulationConfig(seed=7, days=90, lines=2, machines_per_line=6, defect_rate=0.01))
    emit_extracts(history, settings.landing_dir / "opcenter" / "b90", mes="opcenter", batch_id="b90")
    [ingest] = ingest_batches(settings)
    if not ingest.success:
        raise BenchmarkError(f"ingest failed in steps {ingest.failed_steps}")
    trained = train_models(settings)
    if not trained.success:
        raise BenchmarkError(f"training failed in steps {trained.failed_steps}")
    for task in MODELS:
        register_candidate(settings, task, "benchmark-second-version", [])
    return settings


def ensure_shadow(settings: Settings) -> dict[str, tuple[str, str]]:
    """Champion and challenger of every model; version 2 becomes challenger where there is none.

    The figures are defined with a challenger in shadow (paired outputs on every request): another phase is
    an error, not silently measured.
    """
    from governance import rollout
    from governance.promotion import promote
    from governance.registry import Registry, model_name

    url = settings.resolved_database_url
    found = {}
    for task in MODELS:
        name = model_name(task)
        view = rollout.view(url, name)
        if view.champion is None:
            raise BenchmarkError(f"--home: {name} has no champion in {settings.home}; train the models first")
        if view.challenger is None:
            promote(
                Registry.from_settings(settings),
                url,
                name,
                "2",
                alias="challenger",
                actor="benchmark",
                actor_role="ml-engineer",
                reason="monitoring benchmark: challenger in shadow",
            )
            view = rollout.view(url, name)
        if view.phase is None or view.phase.value != "shadow":
            raise BenchmarkError(
                f"{name}: the challenger is in phase {view.phase}; this benchmark measures shadow"
            )
        found[task] = (str(view.champion), str(view.challenger))
    return found


# --- the week of traffic --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Call:
    """One request of the week and the outcome the MES posts later (None: not known by the end of the data)."""

    task: str
    at: datetime  # the moment of history the request belongs to (replay order)
    body: dict[str, Any]
    actual: float | None = None
    observed_at: datetime | None = None


@dataclass
class Week:
    """The requests of the week per model, and the window of history they replay."""

    start: datetime
    end: datetime
    calls: dict[str, list[Call]]

    def counts(self) -> dict[str, int]:
        return {task: len(calls) for task, calls in self.calls.items()}

    def volume(self) -> str:
        """The volume assumption in one line, with this plant's figures."""
        machines = len({c.body["machine_id"] for c in self.calls["failure"]})
        meters = len({c.body["meter_id"] for c in self.calls["consumption"]})
        days = (self.end - self.start) / timedelta(days=1)
        return (
            f"{days:g} days: failure risk of {machines} machines every 15 min, yield of each order released, "
            f"consumption of {meters} meters per day"
        )


def plan_week(settings: Settings, days: int) -> Week:
    """The last ``days`` of the curated history as requests, ending one failure horizon before the last reading.

    Ending there means every failure label has matured, so each status update gets its outcome.
    """
    import pandas as pd

    from models.failure_features import HORIZON
    from serving.context import FeatureContext

    tables = FeatureContext.load(settings.home).tables
    sensors = tables.get("sensor_readings")
    if sensors is None or sensors.empty:
        raise BenchmarkError(f"--home: no curated sensor readings in {settings.home}; ingest a batch first")
    first, last = pd.to_datetime(sensors["ts"]).min(), pd.to_datetime(sensors["ts"]).max()
    end = (last - HORIZON).floor("15min")
    start = end - pd.Timedelta(days=days)
    if start < first + pd.Timedelta(days=7):
        raise BenchmarkError(
            f"--days: {days} days do not fit the history of {settings.home} "
            f"({first.date()} to {last.date()}) after its first week"
        )
    week = Week(
        start=start.tz_localize("UTC").to_pydatetime(),
        end=end.tz_localize("UTC").to_pydatetime(),
        calls={
            "failure": _failure_calls(tables, start, end),
            "yield": _yield_calls(tables, start, end),
            "consumption": _consumption_calls(tables, end, days),
        },
    )
    empty = [task for task, calls in week.calls.items() if not calls]
    if empty:
        raise BenchmarkError(f"--days: the window {start} to {end} has no request for {', '.join(empty)}")
    return week


def _failure_calls(tables: dict[str, Any], start: Any, end: Any) -> list[Call]:
    """Each machine's features every quarter-hour, and whether it failed within the horizon after."""
    import pandas as pd

    from models.failure_features import HORIZON, build_failure_features, failure_labels

    machines = sorted(tables["machines"]["machine_id"].dropna().unique())
    ticks = pd.date_range(start, end, freq=TICK, inclusive="left")
    rows = pd.DataFrame(
        {"machine_id": [m for _ in ticks for m in machines], "forecast_at": ticks.repeat(len(machines))}
    )
    features = build_failure_features(tables, rows)
    labels = failure_labels(tables["machine_events"], rows)
    calls = []
    for (machine, at), values, label in zip(
        rows.itertuples(index=False), features.to_dict("records"), labels, strict=True
    ):
        body = {
            "machine_id": machine,
            "correlation_id": f"status-{machine}-{at:%Y%m%dT%H%M}",
            "features": {k: _plain(v) for k, v in values.items()},
        }
        calls.append(Call("failure", _utc(at), body, float(label), _utc(at + HORIZON)))
    return calls


def _yield_calls(tables: dict[str, Any], start: Any, end: Any) -> list[Call]:
    """Every order released in the window; its good quantity once it closed."""
    import pandas as pd

    orders = tables["production_orders"]
    released = pd.to_datetime(orders["released_at"])
    mine = orders[(released >= start) & (released < end)].sort_values("released_at")
    calls = []
    for row in mine.itertuples(index=False):
        closed = not (pd.isna(row.good_qty) or pd.isna(row.actual_end))
        actual = float(row.good_qty) if closed else None
        observed = _utc(pd.Timestamp(row.actual_end)) if closed else None
        at = _utc(pd.Timestamp(row.released_at))
        calls.append(Call("yield", at, {"order_id": row.order_id}, actual, observed))
    return calls


def _consumption_calls(tables: dict[str, Any], end: Any, days: int) -> list[Call]:
    """A day-ahead forecast per meter for each of the last ``days`` complete days up to the window's end."""
    import pandas as pd

    energy = tables["energy_readings"].copy()
    energy["day"] = (pd.to_datetime(energy["ts"]) - pd.Timedelta(minutes=15)).dt.normalize()
    per_day = energy.groupby(["day", "meter_id"])["kwh"].agg(["size", "sum"])
    last_day = end.normalize() - pd.Timedelta(days=1)
    calls = []
    for offset in range(days - 1, -1, -1):
        day = last_day - pd.Timedelta(days=offset)
        for meter in sorted(energy["meter_id"].unique()):
            size, total = per_day.loc[(day, meter)] if (day, meter) in per_day.index else (0, 0.0)
            complete = size >= 96
            body = {"meter_id": meter, "day": day.date().isoformat()}
            observed = _utc(day + pd.Timedelta(days=1)) if complete else None
            actual = float(total) if complete else None
            calls.append(Call("consumption", _utc(day), body, actual, observed))
    return calls


def _plain(value: Any) -> Any:
    """A JSON value: numpy scalars as Python, NaN as null."""
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and value != value else value


def _utc(moment: Any) -> datetime:
    """A naive UTC timestamp of the curated zone as an aware datetime."""
    stamp = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
    return stamp.to_pydatetime()


@dataclass
class TrafficReport:
    """What sending the week did: answers, outcomes and decisions per model, refusals, seconds per stage."""

    answers: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    decisions: Counter[str] = field(default_factory=Counter)  # "<model> <decision>"
    errors: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=dict)


def send_week(settings: Settings, week: Week, log_path: Path) -> TrafficReport:
    """Start the service, send the week's requests, then the outcomes, then the planner's decisions; stop it."""
    from governance.api_keys import create_key
    from serving.client import MesopsClient, ServiceError
    from serving.server import ServerProcess, free_port

    url = settings.resolved_database_url
    keys = {role: create_key(url, role, f"benchmark {role}").key for role in ("integration", "planner")}
    report = TrafficReport()
    process = ServerProcess(settings, host="127.0.0.1", port=free_port(), log_path=log_path)
    started = time.perf_counter()
    process.start(ready_timeout_s=180)
    report.seconds["service_start"] = time.perf_counter() - started
    lock = threading.Lock()

    def pooled(role: str, items: Iterable[Any], send: Callable[[Any, Any], None]) -> None:
        """Send items from CLIENTS threads, each on its own keep-alive client; count what each gives."""
        local = threading.local()
        clients: list[Any] = []

        def one(item: Any) -> None:
            if not hasattr(local, "client"):
                local.client = MesopsClient(process.url, keys[role])
                with lock:
                    clients.append(local.client)
            try:
                send(local.client, item)
            except ServiceError as err:
                with lock:
                    report.errors[f"{err.status} {err.error}"] += 1

        try:
            with ThreadPoolExecutor(CLIENTS) as pool:
                list(pool.map(one, items))
        finally:
            for client in clients:
                client.close()

    answered: list[tuple[Call, dict[str, Any]]] = []

    def predict(client: Any, call: Call) -> None:
        ask = {
            "failure": client.failure_risk,
            "yield": client.yield_forecast,
            "consumption": client.consumption_forecast,
        }[call.task]
        answer = ask(**call.body)
        with lock:
            answered.append((call, answer))
            report.answers[call.task] += 1

    def post_outcome(client: Any, item: tuple[Call, dict[str, Any]]) -> None:
        call, answer = item
        if call.actual is None or call.observed_at is None:
            return  # not known by the end of the history: the label has not matured
        entity = answer.get("machine_id") or answer.get("order_id") or answer["meter_id"]
        client.outcome(call.task, answer["correlation_id"], entity, call.actual, call.observed_at.isoformat())
        with lock:
            report.outcomes[call.task] += 1

    def decide(client: Any, item: tuple[dict[str, Any], tuple[str, str]]) -> None:
        answer, (decision, reason) = item
        value = _modified_value(answer) if decision == "modify" else None
        if decision == "modify" and value is None:
            decision, reason = "accept", "agreed"  # a failure alarm has no quantity to modify
        client.feedback(answer["recommendation"]["recommendation_id"], decision, reason, value)
        with lock:
            report.decisions[f"{answer['model'].removeprefix('mesops-')} {decision}"] += 1

    try:
        calls = sorted((c for cs in week.calls.values() for c in cs), key=lambda c: c.at)
        started = time.perf_counter()
        pooled("integration", calls, predict)
        report.seconds["predictions"] = time.perf_counter() - started
        started = time.perf_counter()
        pooled("integration", list(answered), post_outcome)
        report.seconds["outcomes"] = time.perf_counter() - started
        started = time.perf_counter()
        pooled("planner", planner_decisions(answered), decide)
        report.seconds["decisions"] = time.perf_counter() - started
    finally:
        started = time.perf_counter()
        process.stop()  # a normal stop writes every pending prediction log row
        report.seconds["service_stop"] = time.perf_counter() - started
    return report


def planner_decisions(
    answered: list[tuple[Call, dict[str, Any]]],
) -> list[tuple[dict[str, Any], tuple[str, str]]]:
    """A seeded share of the open actionable recommendations, in history order, each with a decision."""
    import numpy as np

    rng = np.random.default_rng(7)
    decided = []
    for _, answer in sorted(answered, key=lambda item: (item[0].at, item[1]["request_id"])):
        recommendation = answer["recommendation"]
        if recommendation["action_class"] == "no_action" or recommendation["status"] != "OPEN":
            continue
        if rng.random() < DECIDE_SHARE:
            decided.append((answer, DECISIONS[int(rng.choice(len(DECISIONS), p=DECISION_WEIGHTS))]))
    return decided


def _modified_value(answer: dict[str, Any]) -> float | None:
    """The planner's own figure: 5 % more than forecast (only yield and consumption have a quantity)."""
    if "expected_good_qty" in answer:
        return round(answer["expected_good_qty"] * 1.05, 1)
    if "upper_kwh" in answer:
        return round(answer["upper_kwh"] * 1.05, 1)
    return None


def logged_in_window(settings: Settings, until: datetime) -> dict[str, dict[str, int]]:
    """Per model: prediction log rows of the gate's window, and those carrying the challenger's shadow output."""
    from sqlalchemy import func, select

    from governance.gates import subject_of
    from governance.registry import model_name
    from mesops import database
    from mesops.serving_tables import PredictionLogEntry as Log

    url = settings.resolved_database_url
    found = {}
    for task in MODELS:
        subject = subject_of(url, model_name(task), until, settings.monitoring_window_days)
        base = (
            select(func.count())
            .select_from(Log)
            .where(
                Log.model_name == subject.model_name,
                Log.created_at >= subject.window_start,
                Log.created_at < subject.window_end,
            )
        )
        with database.session_scope(url) as session:
            rows = int(session.scalar(base) or 0)
            shadowed = int(session.scalar(base.where(Log.challenger_output.is_not(None))) or 0)
        found[task] = {"logged": rows, "shadow_scored": shadowed}
    return found


# --- the timed steps (each kind in a fresh process) --------------------------------------------------------------
def measure_step(step: str, home: str, until: str) -> dict[str, Any]:
    """In this (fresh) process: the imports, then a cold and a warm pass of ``step`` over the three models."""
    started = time.perf_counter()
    _import_monitoring()
    imports_s = time.perf_counter() - started
    settings = get_settings(home=Path(home))
    moment = datetime.fromisoformat(until)
    run = {"drift": _drift_step, "signals": _signals_step, "gate": _gate_step}[step]
    passes = {label: {task: run(settings, task, moment) for task in MODELS} for label in ("cold", "warm")}
    return {"imports_s": imports_s, **passes}


def _import_monitoring() -> None:
    """What a monitoring run imports: the governance modules and Evidently's report, metrics and presets."""
    from mesops.settings import disable_telemetry

    disable_telemetry()  # before Evidently is imported
    for module in MONITORING_MODULES:
        importlib.import_module(module)


def _subject(settings: Settings, task: str, until: datetime) -> Any:
    from governance.gates import subject_of
    from governance.registry import model_name

    return subject_of(
        settings.resolved_database_url, model_name(task), until, settings.monitoring_window_days
    )


def _drift_step(settings: Settings, task: str, until: datetime) -> dict[str, Any]:
    """The Evidently drift report of the challenger over the gate's window (as the gate asks for it)."""
    from governance.drift import DriftError, run_drift_report

    subject = _subject(settings, task, until)
    days = (subject.window_end - subject.window_start) / timedelta(days=1)
    started = time.perf_counter()
    try:
        result = run_drift_report(
            settings, subject.model_name, subject.version, until=subject.window_end, window_days=days
        )
    except DriftError as err:  # measured as the gate meets it: the time it took to find it cannot compute
        return {"seconds": time.perf_counter() - started, "note": str(err)}
    seconds = time.perf_counter() - started
    html = Path(result.html_path or "")
    return {
        "seconds": seconds,
        "current_rows": result.current_rows,
        "reference_rows": result.reference_rows,
        "features": len(result.features),
        "share_drifted": round(result.share_drifted, 3),
        "html_mb": round(html.stat().st_size / 1e6, 2) if html.is_file() else None,
    }


def _signals_step(settings: Settings, task: str, until: datetime) -> dict[str, Any]:
    """Every signal the model's current gate names, from the prediction log, outcomes and decisions; no drift."""
    from governance.phase_policy import ChampionGate, load_policies
    from governance.signals import measure

    subject = _subject(settings, task, until)
    gate = load_policies(settings.resolved_policies_dir)[subject.model_name].gate(subject.phase)
    advance = () if isinstance(gate, ChampionGate) else gate.advance
    names = {c.signal for c in (*advance, *gate.keep) if not c.signal.startswith("drift.")}
    started = time.perf_counter()
    measured = measure(settings.resolved_database_url, subject, names)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "signals": len(names), "predictions": measure_sample(measured, "predictions")}


def measure_sample(measured: dict[str, Any], name: str) -> int | None:
    """The sample of one measured signal (None when the gate does not name it)."""
    found = measured.get(name)
    return None if found is None else int(found.sample)


def _gate_step(settings: Settings, task: str, until: datetime) -> dict[str, Any]:
    """The whole gate evaluation, not recorded; its drift report timed on the way through the drift runner."""
    from governance.gates import evaluate, evidently_drift

    inside: dict[str, float] = {}

    def timed_drift(settings: Settings, subject: Any) -> tuple[Any, Any]:
        source, report = evidently_drift(settings, subject)

        def timed() -> tuple[float, bool, int]:
            started = time.perf_counter()
            try:
                return source()
            finally:
                inside["drift_s"] = time.perf_counter() - started

        return timed, report

    started = time.perf_counter()
    evaluation = evaluate(
        settings,
        task,
        actor="benchmark",
        actor_role="ml-engineer",
        until=until,
        record=False,
        drift_runner=timed_drift,
    )
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "drift_inside_s": inside.get("drift_s"),
        "verdict": evaluation.verdict.value,
        "summary": evaluation.summary(),
        "conditions": len(evaluation.conditions),
    }


def run_steps(home: Path, until: datetime) -> dict[str, dict[str, Any]]:
    """Each step kind in its own freshly spawned process (one after the other: the machine has 2 cores)."""
    import multiprocessing

    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing imported or cached before
    found = {}
    for step in STEPS:
        with ProcessPoolExecutor(1, mp_context=spawn) as pool:
            found[step] = pool.submit(measure_step, step, str(home), until.isoformat()).result()
    return found


# --- the run ------------------------------------------------------------------------------------------------------
def prepare(args: argparse.Namespace, work: Path | None) -> tuple[Settings, dict[str, Any]]:
    """The installation with challengers in shadow and a week of traffic logged; what set-up did and took."""
    setup: dict[str, Any] = {"days": args.days}
    if work is not None:
        started = time.perf_counter()
        settings = build_home(work / "home")
        setup["build_s"] = round(time.perf_counter() - started, 1)
        print(f"built a trained installation in {settings.home} in {setup['build_s']:.0f} s")
    else:
        if not (args.home / "platform.db").exists() and "MESOPS_DATABASE_URL" not in os.environ:
            raise BenchmarkError(
                f"--home: {args.home} holds no platform database; give a trained MESOPS_HOME"
            )
        settings = get_settings(home=args.home)
        os.environ["MESOPS_HOME"] = str(settings.home)  # the service reads its settings from the environment
    versions = ensure_shadow(settings)
    started = time.perf_counter()
    week = plan_week(settings, args.days)
    setup["plan_s"] = round(time.perf_counter() - started, 1)
    planned = week.counts()
    already = logged_in_window(settings, datetime.now(UTC))
    if all(already[t]["logged"] >= planned[t] for t in MODELS):
        setup["traffic"] = "reused: the current phase already holds the week"
    else:
        log_path = settings.logs_dir / "serving-benchmark.log"
        traffic = send_week(settings, week, log_path)
        if traffic.errors:
            raise BenchmarkError(f"the service refused requests: {dict(traffic.errors)}; see {log_path}")
        setup["traffic"] = "sent over HTTP to the running service"
        setup |= {f"{k}_s": round(v, 1) for k, v in traffic.seconds.items()}
        setup["answers"] = dict(traffic.answers)
        setup["outcomes"] = dict(traffic.outcomes)
        setup["decisions"] = dict(traffic.decisions)
    setup["versions"] = {t: {"champion": c, "challenger": s} for t, (c, s) in versions.items()}
    setup["window"] = f"{week.start:%Y-%m-%d %H:%M} to {week.end:%Y-%m-%d %H:%M} UTC of the simulated history"
    setup["planned"] = planned
    setup["volume"] = week.volume()
    return settings, setup


def main() -> None:
    """Set up, time the steps, print the table and the JSON line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--days", type=_positive_int, default=7, help="days of traffic to replay (default 7)")
    parser.add_argument("--home", type=Path, default=None, help="a trained MESOPS_HOME (default: build one)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary installation (without --home)"
    )
    args = parser.parse_args()
    work = None if args.home else Path(tempfile.mkdtemp(prefix="mesops-bench-monitoring-"))
    try:
        started = time.perf_counter()
        settings, setup = prepare(args, work)
        setup["load_before"] = round(os.getloadavg()[0], 2)  # this machine is shared: say how busy it was
        setup["total_s"] = round(time.perf_counter() - started, 1)
        until = datetime.now(UTC)
        logged = logged_in_window(settings, until)
        print_setup(setup, logged)
        steps = run_steps(settings.home, until)
    except BenchmarkError as err:
        print(f"monitoring benchmark: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        if work is not None and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    figures = summarize(settings, setup, logged, steps)
    print_table(figures, steps)
    if args.home is None and args.keep:
        print(f"installation kept in {settings.home} (rerun with --home {settings.home})")
    print(json.dumps(figures))


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def summarize(
    settings: Settings,
    setup: dict[str, Any],
    logged: dict[str, dict[str, int]],
    steps: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """The JSON figures: per model and in total, cold and warm."""
    per_model = {}
    for task in MODELS:
        entry: dict[str, Any] = {
            "requests": logged[task]["logged"],
            "shadow_scored": logged[task]["shadow_scored"],
        }
        for step in STEPS:
            for label in ("cold", "warm"):
                entry[f"{step}_{label}_s"] = round(steps[step][label][task]["seconds"], 3)
        drift = steps["drift"]["warm"][task]
        entry["drift"] = {k: v for k, v in drift.items() if k != "seconds"}
        entry["gate_drift_inside_cold_s"] = _rounded(steps["gate"]["cold"][task]["drift_inside_s"])
        entry["verdict"] = steps["gate"]["warm"][task]["summary"]
        sent = "decisions" in setup  # None when the week was reused from an earlier run
        entry["outcomes"] = setup["outcomes"].get(task, 0) if sent else None
        entry["decisions"] = (
            {k.split(" ", 1)[1]: n for k, n in setup["decisions"].items() if k.startswith(f"{task} ")}
            if sent
            else None
        )
        per_model[task] = entry
    imports = {step: round(steps[step]["imports_s"], 3) for step in STEPS}
    total = imports["gate"] + sum(steps["gate"]["cold"][t]["seconds"] for t in MODELS)
    warm = sum(steps["gate"]["warm"][t]["seconds"] for t in MODELS)
    return {
        "benchmark": "monitoring",
        "requests": sum(logged[t]["logged"] for t in MODELS),
        "total_s": round(total, 2),
        "total_warm_s": round(warm, 2),
        "per_model": per_model,
        "imports_s": imports,
        "target_s": TARGET_S,
        "met": total <= TARGET_S,
        "traffic": setup["traffic"],
        "volume": setup["volume"],
        "days": setup.get("days"),
        "window_days": settings.monitoring_window_days,
        "setup_s": {k: v for k, v in setup.items() if k.endswith("_s")},
        "cpus": os.cpu_count(),
        "load_avg_1m_before": setup["load_before"],
        "load_avg_1m_after": round(os.getloadavg()[0], 2),
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def print_setup(setup: dict[str, Any], logged: dict[str, dict[str, int]]) -> None:
    """What the set-up did, before the timings."""
    print(f"traffic: {setup['traffic']}; {setup['volume']} ({setup['window']})")
    print(f"  planned requests per model: {setup['planned']}")
    if "answers" in setup:
        print(
            f"  answered {setup['answers']} in {setup['predictions_s']} s; outcomes {setup['outcomes']} in "
            f"{setup['outcomes_s']} s; planner decisions {setup['decisions']} in {setup['decisions_s']} s "
            f"(service start {setup['service_start_s']} s, stop {setup['service_stop_s']} s)"
        )
    print(f"  in the gate window: {logged}")
    print(f"  set-up took {setup['total_s']} s in all")


def print_table(figures: dict[str, Any], steps: dict[str, dict[str, Any]]) -> None:
    """The per-model table (seconds), the totals, and each gate's verdict."""
    header = f"{'model':12} {'requests':>8}"
    for step in STEPS:
        header += f" {step + ' cold':>12} {step + ' warm':>12}"
    print(header)
    for task, entry in figures["per_model"].items():
        line = f"{task:12} {entry['requests']:>8}"
        for step in STEPS:
            line += f" {entry[f'{step}_cold_s']:>12.2f} {entry[f'{step}_warm_s']:>12.2f}"
        print(line)
    imports = figures["imports_s"]
    line = f"{'imports':12} {'':>8}"
    for step in STEPS:
        line += f" {imports[step]:>12.2f} {'':>12}"
    print(line)
    for task, entry in figures["per_model"].items():
        drift = entry["drift"]
        described = drift.get("note") or (
            f"{drift['current_rows']} served vs {drift['reference_rows']} reference rows, "
            f"{drift['features']} features, share drifted {drift['share_drifted']}, HTML {drift['html_mb']} MB"
        )
        print(f"  {task}: drift {described}; gate {entry['verdict']}")
    print(
        f"one monitoring run of the plant (gate imports + 3 cold gate evaluations): {figures['total_s']} s "
        f"(warm {figures['total_warm_s']} s); target {figures['target_s']:.0f} s: "
        f"{'met' if figures['met'] else 'MISSED'}; load average {figures['load_avg_1m_before']} before, "
        f"{figures['load_avg_1m_after']} after, {figures['cpus']} CPUs"
    )


if __name__ == "__main__":
    main()
