"""The pull_opcenter job: bring a fresh extract from the Opcenter endpoint into the landing zone.

The landing sensor then sees the new complete batch and starts the ingest run, as for dropped files.
"""

import dagster as dg

from pipelines.resources import OpcenterEndpointSource, PlatformResource


@dg.op(description="Pull every mapped entity set from the Opcenter OData endpoint into a new landing batch.")
def pull_opcenter_extract(
    context: dg.OpExecutionContext, platform: PlatformResource, opcenter: OpcenterEndpointSource
) -> str:
    settings = platform.settings()
    batch_dir = opcenter.pull(settings.landing_dir, platform.contracts())
    context.add_output_metadata({"batch": batch_dir.name, "endpoint": opcenter.base_url or ""})
    return batch_dir.name


@dg.job(description="Pull an extract from the Opcenter OData endpoint (MESOPS_OPCENTER_URL) into landing.")
def pull_opcenter() -> None:
    pull_opcenter_extract()


def build_pull_schedules(cron: str | None) -> list[dg.ScheduleDefinition]:
    """A schedule for the pull when MESOPS_OPCENTER_PULL_CRON is set."""
    return [dg.ScheduleDefinition(job=pull_opcenter, cron_schedule=cron)] if cron else []
