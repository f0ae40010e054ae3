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
from governance.lineage import DatasetFingerprint, Lineage, baseline_summary
from governance.promotion import current_version, promote
from governance.registry import Registry
from mesops import database
from mesops.settings import Settings
from mesops.tables import TableLoad
from models.consumption import train_and_evaluate as train_consumption
from models.consumption_features import ENERGY_READINGS, build_features
from models.evaluation import EvaluationReport
from models.failure import failure_dataset, train_failure_forecaster
from models.failure_features import feature_names
from models.order_yield import train_and_evaluate as train_yield
from models.yield_features import build_yield_features
from pipelines.zones import ZoneStore

REPO_ROOT = Path(__file__).resolve().parent.parent

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


@dataclass
class Candidate:
    """A trained forecaster waiting for registration."""

    task: str
    model: Any
    report: EvaluationReport
    input_example: pd.DataFrame
    params: dict[str, Any]
    datasets: list[DatasetInput] = field(default_factory=list)


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


def _train_failure(tables: dict[str, pd.DataFrame]) -> tuple[Any, EvaluationReport, pd.DataFrame, dict]:
    model, report = train_failure_forecaster(tables)
    example = failure_dataset(tables).tail(5)[feature_names()]
    return model, report, example, {"model": "lightgbm", **model.params.model_dump()}


def _train_yield(tables: dict[str, pd.DataFrame]) -> tuple[Any, EvaluationReport, pd.DataFrame, dict]:
    model, report = train_yield(tables)
    orders = tables["production_orders"].tail(5)
    example = build_yield_features(tables, orders).reset_index(drop=True)
    return model, report, example, {"model": "lightgbm", "features": len(example.columns)}


def _train_consumption(tables: dict[str, pd.DataFrame]) -> tuple[Any, EvaluationReport, pd.DataFrame, dict]:
    readings = tables["energy_readings"]
    model, report = train_consumption(readings, ENERGY_READINGS, dataset="curated energy_readings")
    example = build_features(readings, ENERGY_READINGS).dropna(subset=["target"]).tail(5)
    example = example[["series", "group", "target_day", "ts", *model.config.features]].reset_index(drop=True)
    return model, report, example, {"model": "lightgbm", "coverage": model.config.coverage}


TRAINERS: dict[str, Callable[[dict[str, pd.DataFrame]], tuple[Any, EvaluationReport, pd.DataFrame, dict]]] = {
    "failure": _train_failure,
    "yield": _train_yield,
    "consumption": _train_consumption,
}


def train_candidate(settings: Settings, contracts: dict[str, Contract], task: str) -> Candidate:
    """Train one forecaster on every curated batch of its tables and keep it as the task's candidate."""
    store = ZoneStore(settings.home)
    tables = curated_tables(store, TASK_TABLES[task])
    model, report, example, params = TRAINERS[task](tables)
    candidate = Candidate(
        task, model, report, example, params, dataset_inputs(settings, store, contracts, tables)
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
    settings: Settings, candidate: Candidate, dagster_run_id: str, asset_keys: list[str]
) -> Lineage:
    """The lineage document of a candidate: contracts, exact-row hashes, attestations, window, run, code."""
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
    )


def register_candidate(
    settings: Settings, task: str, dagster_run_id: str, asset_keys: list[str]
) -> Registration:
    """Register the task's candidate in MLflow with its lineage (audited); the first version becomes champion."""
    candidate = load_candidate(settings, task)
    registry = Registry.from_settings(settings)
    lineage = build_lineage(settings, candidate, dagster_run_id, asset_keys)
    registered = registry.register(
        task, candidate.model, candidate.report, lineage, candidate.params, candidate.input_example
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
