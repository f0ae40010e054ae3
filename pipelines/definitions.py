"""The one Dagster assembly point of mesops: `dagster dev -m pipelines.definitions`."""

from __future__ import annotations

import dagster as dg

from data_contracts.contract import load_contracts
from mesops.settings import Settings, get_settings
from pipelines.assets.data_path import build_data_path_assets
from pipelines.assets.monitoring import GROUP as MONITORING_GROUP
from pipelines.assets.monitoring import build_all_monitoring_assets
from pipelines.assets.training import build_training_assets
from pipelines.monitoring_sensor import build_feedback_sensor, build_monitoring_schedule
from pipelines.partitions import LANDING_BATCHES
from pipelines.pull import build_pull_schedules, pull_opcenter
from pipelines.resources import build_resources
from pipelines.sensors import build_landing_sensor

INGEST_JOB = "ingest"
TRAIN_JOB = "train"
MONITOR_JOB = "monitor"


def build_definitions(settings: Settings) -> dg.Definitions:
    """Assets, checks, jobs, sensors and resources for one mesops installation."""
    data_path = build_data_path_assets(load_contracts(settings.resolved_contracts_dir))
    data_path += build_training_assets()
    data_path += build_all_monitoring_assets()
    ingest = dg.define_asset_job(
        INGEST_JOB,
        selection=dg.AssetSelection.groups("landing", "anonymized", "curated"),
        partitions_def=LANDING_BATCHES,
        description="Land, anonymize and validate every table of one landing batch.",
    )
    train = dg.define_asset_job(
        TRAIN_JOB,
        selection=dg.AssetSelection.groups("training"),
        description="Train the three forecasters on every curated batch and register those that beat their baseline.",
    )
    monitor = dg.define_asset_job(
        MONITOR_JOB,
        selection=dg.AssetSelection.groups(MONITORING_GROUP),
        description="Drift report, signals and gate of every model; the gate's verdict is recorded and carried out.",
    )
    executor = (
        dg.in_process_executor if settings.dagster_executor == "in_process" else dg.multiprocess_executor
    )
    return dg.Definitions(
        assets=[a for a in data_path if not isinstance(a, dg.AssetChecksDefinition)],
        asset_checks=[c for c in data_path if isinstance(c, dg.AssetChecksDefinition)],
        jobs=[ingest, train, monitor, pull_opcenter],
        schedules=[
            *build_pull_schedules(settings.opcenter_pull_cron),
            build_monitoring_schedule(MONITOR_JOB, settings.monitoring_cron),
        ],
        sensors=[
            build_landing_sensor(INGEST_JOB, settings.sensor_interval_s),
            build_feedback_sensor(MONITOR_JOB, settings.sensor_interval_s, settings.monitoring_feedback_min),
        ],
        resources=build_resources(settings),
        executor=executor,
    )


defs = build_definitions(get_settings())
