"""Assets that train the three forecasters on every curated batch, gated by a blocking beats-baseline check."""

import dagster as dg

from pipelines import training
from pipelines.assets.data_path import curated_key
from pipelines.resources import PlatformResource

TASKS = ("failure", "yield", "consumption")


def candidate_key(task: str) -> dg.AssetKey:
    return dg.AssetKey(["candidate", task])


def build_candidate_asset(task: str) -> list:
    """The trained, not yet registered forecaster of one task, and the check that it beats its baseline."""

    @dg.asset(
        key=candidate_key(task),
        deps=[curated_key(table) for table in training.TASK_TABLES[task]],
        group_name="training",
        description=f"The {task} forecaster trained on every curated batch, with its evaluation report.",
        kinds={"lightgbm"},
    )
    def _candidate(context: dg.AssetExecutionContext, platform: PlatformResource) -> dg.MaterializeResult:
        candidate = training.train_candidate(platform.settings(), platform.contracts(), task)
        return dg.MaterializeResult(
            metadata={
                **training.report_summary(candidate.report),
                "metrics": dg.MetadataValue.json(candidate.report.metrics),
                "training_rows": sum(d.rows for d in candidate.datasets),
            }
        )

    @dg.asset_check(asset=_candidate, name="beats_baseline", blocking=True)
    def _beats_baseline(
        context: dg.AssetCheckExecutionContext, platform: PlatformResource
    ) -> dg.AssetCheckResult:
        """A candidate that does not beat its plain baseline on later, held-out data is never registered."""
        baseline = training.load_candidate(platform.settings(), task).report.baseline
        return dg.AssetCheckResult(
            passed=baseline.beats_baseline,
            metadata={
                "metric": baseline.metric,
                "model": baseline.model_value,
                "baseline": baseline.baseline_value,
                "baseline_name": baseline.baseline_name,
            },
        )

    @dg.asset(
        key=dg.AssetKey(["registered", task]),
        deps=[_candidate],
        group_name="training",
        description=f"The {task} candidate registered in MLflow as a new version of mesops-{task}, with lineage.",
        kinds={"mlflow"},
    )
    def _registered(context: dg.AssetExecutionContext, platform: PlatformResource) -> dg.MaterializeResult:
        platform.ensure_database()
        sources = [curated_key(table) for table in training.TASK_TABLES[task]]
        upstream = [key.to_user_string() for key in (*sources, candidate_key(task), context.asset_key)]
        registration = training.register_candidate(platform.settings(), task, context.run_id, upstream)
        return dg.MaterializeResult(
            metadata={
                "model": registration.model_name,
                "version": registration.version,
                "mlflow_run_id": registration.run_id,
                "made_champion": registration.champion,
            }
        )

    return [_candidate, _beats_baseline, _registered]


def build_training_assets() -> list:
    """Candidate assets and checks of every task."""
    return [definition for task in TASKS for definition in build_candidate_asset(task)]
