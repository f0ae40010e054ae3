"""Sensor that turns each new complete batch in the landing folder into a partition and an ingest run."""

import dagster as dg

from pipelines.partitions import LANDING_BATCHES
from pipelines.resources import LandingFolderSource


def build_landing_sensor(job_name: str, interval_s: int) -> dg.SensorDefinition:
    """Watch the landing folder; a batch is new when its _manifest.json exists and it has no partition yet."""

    @dg.sensor(
        job_name=job_name, minimum_interval_seconds=interval_s, default_status=dg.DefaultSensorStatus.RUNNING
    )
    def landing_sensor(context: dg.SensorEvaluationContext, landing: LandingFolderSource) -> dg.SensorResult:
        known = set(context.instance.get_dynamic_partitions(LANDING_BATCHES.name))
        new = [b.batch_id for b in landing.complete_batches() if b.batch_id not in known]
        if not new:
            return dg.SensorResult(skip_reason="no new complete batch in the landing folder")
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=batch_id, partition_key=batch_id) for batch_id in new],
            dynamic_partitions_requests=[LANDING_BATCHES.build_add_request(new)],
        )

    return landing_sensor
