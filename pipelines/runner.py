"""Run mesops jobs in process on its Dagster instance: ingest (one run per landing batch), train, monitor."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg
from sqlalchemy import select

from mesops import database
from mesops.settings import Settings
from mesops.tables import TableLoad
from pipelines.assets.monitoring import GROUP as MONITORING_GROUP
from pipelines.definitions import INGEST_JOB, MONITOR_JOB, TRAIN_JOB, build_definitions
from pipelines.instance import prepare_dagster_home
from pipelines.partitions import LANDING_BATCHES
from pipelines.resources import LandingFolderSource

# Step logs go to the Dagster event log (the UI shows them); the console only gets warnings and errors.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass(frozen=True)
class BatchRun:
    """The outcome of ingesting one batch: the Dagster run and every table's counts."""

    batch_id: str
    run_id: str
    success: bool
    loads: list[TableLoad]
    failed_steps: list[str]


def pending_batches(settings: Settings, instance: dg.DagsterInstance) -> list[str]:
    """Complete landing batches that have no partition (so no ingest run) yet."""
    known = set(instance.get_dynamic_partitions(LANDING_BATCHES.name))
    source = LandingFolderSource(landing_dir=str(settings.landing_dir))
    return [b.batch_id for b in source.complete_batches() if b.batch_id not in known]


def ingest_batches(
    settings: Settings, batch_ids: list[str] | None = None, on_batch: Callable[[str], None] | None = None
) -> list[BatchRun]:
    """Ingest the given batches (default: every pending one) and return their outcomes."""
    settings.ensure_dirs()
    database.upgrade(settings.resolved_database_url)
    prepare_dagster_home(settings)
    instance = dg.DagsterInstance.get()
    targets = batch_ids if batch_ids is not None else pending_batches(settings, instance)
    known = set(instance.get_dynamic_partitions(LANDING_BATCHES.name))
    new = [b for b in targets if b not in known]
    if new:
        instance.add_dynamic_partitions(LANDING_BATCHES.name, new)
    job = build_definitions(settings).resolve_job_def(INGEST_JOB)
    runs = []
    for batch_id in targets:
        if on_batch:
            on_batch(batch_id)
        result = job.execute_in_process(
            instance=instance, partition_key=batch_id, raise_on_error=False, run_config=QUIET_CONSOLE
        )
        failed = [e.step_key or "" for e in result.all_events if e.is_step_failure]
        runs.append(
            BatchRun(batch_id, result.run_id, result.success, table_loads(settings, result.run_id), failed)
        )
    return runs


def table_loads(settings: Settings, run_id: str) -> list[TableLoad]:
    """The per-table counts a run recorded in the platform database."""
    with database.session_scope(settings.resolved_database_url) as session:
        rows = session.scalars(
            select(TableLoad).where(TableLoad.run_id == run_id).order_by(TableLoad.table_name)
        )
        return list(rows)


@dataclass(frozen=True)
class TrainRun:
    """The outcome of the train job: the Dagster run, its failed steps and check outcomes by name."""

    run_id: str
    success: bool
    failed_steps: list[str]
    checks: dict[str, bool]


def train_models(settings: Settings) -> TrainRun:
    """Run the train job (every task) on the mesops Dagster instance."""
    database.upgrade(settings.resolved_database_url)
    prepare_dagster_home(settings)
    instance = dg.DagsterInstance.get()
    job = build_definitions(settings).resolve_job_def(TRAIN_JOB)
    result = job.execute_in_process(instance=instance, raise_on_error=False, run_config=QUIET_CONSOLE)
    return TrainRun(result.run_id, result.success, _failed_steps(result), _checks(result))


class RunFailedError(RuntimeError):
    """A job of :func:`build_simulated_installation` failed (names its failed steps)."""


def build_simulated_installation(settings: Settings, days: int = 90, seed: int = 7) -> None:
    """A trained installation of a simulated two-line plant (1 % planted defects) on ``settings``' stores:
    what the tests, benchmarks and the production-stack checks start from. Raises RunFailedError."""
    from pipelines.simulator import SimulationConfig, emit_extracts, simulate

    settings.ensure_dirs()
    config = SimulationConfig(seed=seed, days=days, lines=2, machines_per_line=6, defect_rate=0.01)
    batch = f"b{days}"
    emit_extracts(simulate(config), settings.landing_dir / "opcenter" / batch, mes="opcenter", batch_id=batch)
    for ingested in ingest_batches(settings):
        if not ingested.success:
            raise RunFailedError(
                f"ingest of batch {ingested.batch_id} failed in steps {ingested.failed_steps}"
            )
    trained = train_models(settings)
    if not trained.success:
        raise RunFailedError(f"training failed in steps {trained.failed_steps}")


def _failed_steps(result: dg.ExecuteInProcessResult) -> list[str]:
    return [e.step_key or "" for e in result.all_events if e.is_step_failure]


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    """Each check's outcome by '<asset key>:<check name>'."""
    evaluations = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    return {f"{c.asset_key.to_user_string()}:{c.check_name}": c.passed for c in evaluations}


@dataclass(frozen=True)
class GateOutcome:
    """What the monitor run's gate asset did for one model (from its materialization metadata)."""

    model: str
    skipped: str | None  # why there was nothing to evaluate (no champion); None when evaluated
    verdict: str | None
    action: str | None
    detail: str
    evaluation_audit_seq: int | None


@dataclass(frozen=True)
class MonitoringRun:
    """The outcome of the monitor job: the Dagster run, its failed steps, each model's gate and every check.

    ``gates`` is keyed by family; a model whose gate step failed is absent from it (see ``failed_steps``).
    """

    run_id: str
    success: bool
    failed_steps: list[str]
    gates: dict[str, GateOutcome]
    checks: dict[str, bool]


def run_monitoring(settings: Settings) -> MonitoringRun:
    """Run the monitor job (drift report, signals and gate of every model) on the mesops Dagster instance."""
    database.upgrade(settings.resolved_database_url)
    prepare_dagster_home(settings)
    instance = dg.DagsterInstance.get()
    job = build_definitions(settings).resolve_job_def(MONITOR_JOB)
    result = job.execute_in_process(instance=instance, raise_on_error=False, run_config=QUIET_CONSOLE)
    return MonitoringRun(
        result.run_id, result.success, _failed_steps(result), _gate_outcomes(result), _checks(result)
    )


def _gate_outcomes(result: dg.ExecuteInProcessResult) -> dict[str, GateOutcome]:
    """Each model's gate outcome by family, read from the gate materializations of the run."""
    outcomes = {}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        path = materialization.asset_key.path
        if len(path) != 3 or path[0] != MONITORING_GROUP or path[2] != "gate":
            continue
        meta = {key: value.value for key, value in materialization.metadata.items()}
        skipped = meta.get("skipped")
        outcomes[path[1]] = GateOutcome(
            model=path[1],
            skipped=None if skipped is None else str(skipped),
            verdict=meta.get("verdict"),  # type: ignore[arg-type]
            action=meta.get("action"),  # type: ignore[arg-type]
            detail=str(meta.get("action_detail", skipped or "")),
            evaluation_audit_seq=meta.get("evaluation_audit_seq"),  # type: ignore[arg-type]
        )
    return outcomes
