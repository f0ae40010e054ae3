"""Training stages: curated tables in, a candidate forecaster with its evaluation report and lineage inputs out.

Plain functions (the Dagster assets in pipelines/assets/training.py stay thin). A candidate is kept on disk
under MESOPS_HOME/candidates/<task>/ until the registration step, which only runs when it beats its baseline.
"""

from __future__ import annotations

import json
import pickle
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from sqlalchemy import select

from data_contracts.anonymization.attestation import frame_content_hash
from data_contracts.contract import Contract
from governance import audit
from governance.lineage import (
    DatasetFingerprint,
    Lineage,
    ReferenceSample,
    baseline_summary,
    reference_parquet,
)
from governance.promotion import current_version, promote
from governance.registry import Registry
from mesops import database
from mesops.settings import Settings
from mesops.tables import TableLoad
from models.consumption import consumption_split
from models.consumption import train_and_evaluate as train_consumption
from models.consumption_features import ENERGY_READINGS, build_features
from models.evaluation import EvaluationReport
from models.failure import failure_dataset, failure_split, train_failure_forecaster
from models.failure_features import feature_names
from models.order_yield import YieldModelConfig, split_rows, training_rows
from models.order_yield import train_and_evaluate as train_yield
from models.yield_features import build_yield_features
from pipelines.zones import ZoneStore

REPO_ROOT = Path(__file__).resolve().parent.parent
# Seed of the drift reference's row sample (recorded in lineage with it).
REFERENCE_SEED = 0

# The curated tables each forecaster learns from.
TASK_TABLES: dict[str, tuple[str, ...]] = {
    "failure": ("sensor_readings", "machine_events", "machines"),
    "yield": ("production_orders", "operations", "sensor_readings", "machine_events", "material_consumption"),
    "consumption": ("energy_readings",),
}


class TrainingError(RuntimeError):
    """Training cannot run: which task, and what is missing."""


@dataclass(frozen=True)
class DatasetInput:
    """One curated table as it was read for training: the exact rows' hash, and where they came from."""

    table: str
    contract: str
    rows: int
    sha256: str
    batches: list[str]
    attestations: list[str]


@dataclass(frozen=True)
class Reference:
    """A candidate's drift reference: the sampled rows (features + prediction) and how they were drawn."""

    frame: pd.DataFrame
    features: list[str]
    seed: int
    split: str
    source_rows: int


@dataclass
class Candidate:
    """A trained forecaster waiting for registration."""

    task: str
    model: Any
    report: EvaluationReport
    input_example: pd.DataFrame
    params: dict[str, Any]
    datasets: list[DatasetInput] = field(default_factory=list)
    reference: Reference | None = None  # None in candidates pickled before references existed


@dataclass(frozen=True)
class Trained:
    """What a trainer returns: the model, its report, an input example, params, and its exact training rows."""

    model: Any
    report: EvaluationReport
    input_example: pd.DataFrame
    params: dict[str, Any]
    training: pd.DataFrame
    split: str  # which split the training rows are: "train", or "train+validation" when refit on both


def curated_tables(store: ZoneStore, names: tuple[str, ...]) -> dict[str, pd.DataFrame]:
    """Every curated batch of each table, concatenated, without the bookkeeping columns."""
    tables = {}
    for name in names:
        frame = store.read_all("curated", name)
        if frame.empty:
            raise TrainingError(f"curated table {name!r} is empty: ingest a batch that carries it first")
        tables[name] = frame.drop(columns=[c for c in frame.columns if c.startswith("_")])
    return tables


def dataset_inputs(
    settings: Settings, store: ZoneStore, contracts: dict[str, Contract], tables: dict[str, pd.DataFrame]
) -> list[DatasetInput]:
    """Lineage of the training inputs: contract version, content hash, batches and their attestations."""
    loads = _latest_loads(settings)
    inputs = []
    for name, frame in tables.items():
        batches = [p.stem for p in store.batch_files("curated", name) if pq.read_metadata(p).num_rows > 0]
        attestations = sorted(
            {loads[(b, name)].attestation_id or "" for b in batches if (b, name) in loads} - {""}
        )
        inputs.append(
            DatasetInput(
                name, contracts[name].ref, len(frame), frame_content_hash(frame), batches, attestations
            )
        )
    return inputs


def _latest_loads(settings: Settings) -> dict[tuple[str, str], TableLoad]:
    with database.session_scope(settings.resolved_database_url) as session:
        loads = session.scalars(select(TableLoad).order_by(TableLoad.created_at))
        return {(load.batch_id, load.table_name): load for load in loads}


def _train_failure(tables: dict[str, pd.DataFrame]) -> Trained:
    split = failure_split(tables)
    model, report = train_failure_forecaster(tables, split=split)
    example = failure_dataset(tables).tail(5)[feature_names()]
    params = {"model": "lightgbm", **model.params.model_dump()}
    return Trained(model, report, example, params, split.train, "train")


def _train_yield(tables: dict[str, pd.DataFrame]) -> Trained:
    config = YieldModelConfig()
    split = split_rows(training_rows(tables, config.features), config)
    model, report = train_yield(tables, config, split=split)
    orders = tables["production_orders"].tail(5)
    example = build_yield_features(tables, orders).reset_index(drop=True)
    # the final booster is refit on train + validation (validation only picks the rounds): both are training
    training = pd.concat([split.train, split.validation], ignore_index=True)
    params = {"model": "lightgbm", "features": len(example.columns)}
    return Trained(model, report, example, params, training, "train+validation")


def _train_consumption(tables: dict[str, pd.DataFrame]) -> Trained:
    readings = tables["energy_readings"]
    split = consumption_split(readings, ENERGY_READINGS)
    model, report = train_consumption(
        readings, ENERGY_READINGS, dataset="curated energy_readings", split=split
    )
    example = build_features(readings, ENERGY_READINGS).dropna(subset=["target"]).tail(5)
    example = example[["series", "group", "target_day", "ts", *model.config.features]].reset_index(drop=True)
    params = {"model": "lightgbm", "coverage": model.config.coverage}
    return Trained(model, report, example, params, split.train, "train")


TRAINERS: dict[str, Callable[[dict[str, pd.DataFrame]], Trained]] = {
    "failure": _train_failure,
    "yield": _train_yield,
    "consumption": _train_consumption,
}


def reference_sample(task: str, trained: Trained, max_rows: int, seed: int = REFERENCE_SEED) -> Reference:
    """A seeded sample of the exact training rows, keyed like the service's prediction log, plus the prediction.

    The columns are the keys serving logs in ``prediction_log.features`` for the task (serving/service.py):
    failure and yield, the model's feature dict; consumption, ``series``, ``day``, ``rows`` and the first
    quarter-hour's feature row of the day (one reference row per series and day). ``prediction`` is the
    model's output as the service reports it: failure probability, yield fraction, the day's total kWh.
    """
    model, training = trained.model, trained.training
    if task == "consumption":
        return _consumption_reference(model, training, trained.split, max_rows, seed)
    sample = training.sample(n=min(max_rows, len(training)), random_state=seed).sort_index()
    frame = sample[list(model.features)].reset_index(drop=True)
    if task == "failure":
        prediction = model.predict_proba(frame)
    elif task == "yield":
        prediction = model.predict(frame).to_numpy()
    else:
        raise TrainingError(f"task: no drift reference is defined for {task!r}")
    return Reference(
        frame.assign(prediction=prediction), list(model.features), seed, trained.split, len(training)
    )


def _consumption_reference(
    model: Any, training: pd.DataFrame, split: str, max_rows: int, seed: int
) -> Reference:
    days = training[["series", "target_day"]].drop_duplicates()
    chosen = days.sample(n=min(max_rows, len(days)), random_state=seed).sort_index()
    rows = training.merge(chosen, on=["series", "target_day"])
    forecast = model.predict_features(rows)
    totals = forecast.groupby(["series", "target_day"])["forecast"].agg(["sum", "size"])
    # the service logs the day's first quarter-hour (slot 0); a day whose slot 0 had no reading has no such row
    first = rows[rows["slot"] == 0].set_index(["series", "target_day"]).join(totals, how="inner")
    first = first.reset_index().sort_values(["target_day", "series"], kind="stable")
    feature_columns = [c for c in training.columns if c not in ("series", "group", "target_day", "ts")]
    frame = pd.DataFrame(
        {
            "series": first["series"].astype(str).to_numpy(),
            "day": pd.to_datetime(first["target_day"]).dt.date.map(lambda d: d.isoformat()).to_numpy(),
            "rows": first["size"].astype("int64").to_numpy(),
        }
    )
    for column in feature_columns:
        frame[column] = first[column].to_numpy()
    frame["prediction"] = first["sum"].astype(float).to_numpy()
    return Reference(frame, list(model.config.features), seed, split, len(days))


def train_candidate(settings: Settings, contracts: dict[str, Contract], task: str) -> Candidate:
    """Train one forecaster on every curated batch of its tables and keep it as the task's candidate."""
    store = ZoneStore(settings.home)
    tables = curated_tables(store, TASK_TABLES[task])
    trained = TRAINERS[task](tables)
    candidate = Candidate(
        task,
        trained.model,
        trained.report,
        trained.input_example,
        trained.params,
        dataset_inputs(settings, store, contracts, tables),
        reference_sample(task, trained, settings.drift_reference_rows),
    )
    save_candidate(settings, candidate)
    return candidate


def candidate_dir(settings: Settings, task: str) -> Path:
    return settings.home / "candidates" / task


def save_candidate(settings: Settings, candidate: Candidate) -> Path:
    """Pickle the candidate and write its report as JSON beside it (readable without Python)."""
    folder = candidate_dir(settings, candidate.task)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "candidate.pkl").write_bytes(pickle.dumps(candidate))
    (folder / "report.json").write_text(candidate.report.model_dump_json(indent=2))
    return folder


def load_candidate(settings: Settings, task: str) -> Candidate:
    path = candidate_dir(settings, task) / "candidate.pkl"
    if not path.exists():
        raise TrainingError(f"no {task} candidate at {path}: train it first")
    return pickle.loads(path.read_bytes())  # our own file, written by save_candidate


def code_version() -> str:
    """The git commit of the code that trained (with '+dirty' for local changes), else the package version."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return f"mesops {package_version('mesops')}"


def report_summary(report: EvaluationReport) -> dict[str, Any]:
    """Headline figures of a report for Dagster metadata."""
    baseline = report.baseline
    return {
        "metric": baseline.metric,
        "model": round(baseline.model_value, 4),
        "baseline": f"{baseline.baseline_name}: {round(baseline.baseline_value, 4)}",
        "ratio": round(baseline.ratio, 4),
        "beats_baseline": baseline.beats_baseline,
        "rows": json.dumps(report.rows),
    }


@dataclass(frozen=True)
class Registration:
    """A registered candidate: its model name and version, and whether it became the first champion."""

    model_name: str
    version: str
    run_id: str
    champion: bool


def build_lineage(
    settings: Settings,
    candidate: Candidate,
    dagster_run_id: str,
    asset_keys: list[str],
    *,
    reference: ReferenceSample | None = None,
) -> Lineage:
    """The lineage document of a candidate: contracts, exact-row hashes, attestations, window, run, code,
    and the drift reference's record when given."""
    return Lineage(
        contracts=sorted({d.contract for d in candidate.datasets}),
        datasets={
            d.table: DatasetFingerprint(rows=d.rows, sha256=d.sha256, batches=d.batches)
            for d in candidate.datasets
        },
        attestations=sorted({a for d in candidate.datasets for a in d.attestations}),
        training_window=dict(candidate.report.split),
        dagster_run_id=dagster_run_id,
        asset_keys=asset_keys,
        code_version=code_version(),
        baseline=baseline_summary(candidate.report.baseline),
        anonymization_policy=settings.anonymization_policy_version,
        reference=reference,
    )


def reference_record(reference: Reference) -> tuple[ReferenceSample, bytes]:
    """The lineage record of a drift reference and the Parquet bytes it describes."""
    data = reference_parquet(reference.frame)
    record = ReferenceSample.of(
        data,
        rows=len(reference.frame),
        seed=reference.seed,
        split=reference.split,
        source_rows=reference.source_rows,
        features=reference.features,
    )
    return record, data


def register_candidate(
    settings: Settings, task: str, dagster_run_id: str, asset_keys: list[str]
) -> Registration:
    """Register the task's candidate in MLflow with its lineage (audited); the first version becomes champion."""
    candidate = load_candidate(settings, task)
    registry = Registry.from_settings(settings)
    record, data = (None, None) if candidate.reference is None else reference_record(candidate.reference)
    lineage = build_lineage(settings, candidate, dagster_run_id, asset_keys, reference=record)
    registered = registry.register(
        task,
        candidate.model,
        candidate.report,
        lineage,
        candidate.params,
        candidate.input_example,
        reference=data,
    )
    url = settings.resolved_database_url
    actor = f"dagster:{dagster_run_id}"
    audit.append(
        url,
        audit.AuditEvent(
            actor=actor,
            actor_role="system",
            action="register",
            model_name=registered.name,
            model_version=registered.version,
            reason=f"trained on {sum(d.rows for d in candidate.datasets)} curated rows; "
            f"{candidate.report.baseline.metric} {candidate.report.baseline.ratio:.3f}x baseline",
            evidence={"mlflow_run_id": registered.run_id, "dagster_run_id": dagster_run_id},
        ),
    )
    champion = current_version(url, registered.name) is None
    if champion:
        promote(
            registry,
            url,
            registered.name,
            registered.version,
            actor=actor,
            actor_role="system",
            reason="first registered version: no champion yet",
        )
    return Registration(registered.name, registered.version, registered.run_id, champion)
