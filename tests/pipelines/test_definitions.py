"""The Dagster definitions load as `dagster dev` loads them, and the landing sensor finds new batches."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import dagster as dg

from pipelines.definitions import INGEST_JOB, build_definitions
from pipelines.partitions import LANDING_BATCHES
from pipelines.resources import LandingFolderSource
from pipelines.sensors import build_landing_sensor
from tests.conftest import REPO_ROOT


def test_definitions_have_every_stage_and_checks(settings) -> None:
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {
        "landing/employees",
        "landing/shift_notes",
        "anonymized/shift_notes",
        "curated/shift_notes",
    } <= keys
    assert "anonymized/employees" not in keys and "curated/employees" not in keys  # roster stays in landing
    checks = {key.name for key in graph.asset_check_keys}
    assert {
        "attested",
        "rows_accounted_for",
        "quarantine_within_limit",
        "rule_good_plus_scrap_within_started",
    } <= checks
    curated_operations = graph.get_check_keys_for_assets({dg.AssetKey(["curated", "operations"])})
    blocking = {key.name for key in curated_operations if graph.get_check_spec(key).blocking}
    assert blocking == {"rows_accounted_for", "quarantine_within_limit"}
    # tables that reference machines wait for the machine master data of the same batch
    parents = graph.get(dg.AssetKey(["curated", "sensor_readings"])).parent_keys
    assert dg.AssetKey(["anonymized", "machines"]) in parents
    assert defs.resolve_job_def(INGEST_JOB).partitions_def == LANDING_BATCHES


def test_dagster_cli_validates_the_definitions(settings) -> None:
    env = {**os.environ, "MESOPS_HOME": str(settings.home)}
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "pipelines.definitions"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def _write_batch(settings, batch_id: str, manifest: bool) -> None:  # type: ignore[no-untyped-def]
    folder = settings.landing_dir / "file" / batch_id
    folder.mkdir(parents=True)
    (folder / "machines.csv").write_text("machine_id,work_center_id,line_id,machine_type,commissioned_on\n")
    if manifest:
        (folder / "_manifest.json").write_text(
            json.dumps(
                {
                    "batch_id": batch_id,
                    "source_kind": "file",
                    "entities": {"machines": {"files": ["machines.csv"]}},
                }
            )
        )


def test_sensor_requests_one_run_per_new_complete_batch(settings) -> None:
    _write_batch(settings, "file-1", manifest=True)
    _write_batch(settings, "file-2", manifest=False)  # still being written: no manifest yet
    sensor = build_landing_sensor(INGEST_JOB, 30)
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(
            instance=instance,
            resources={"landing": LandingFolderSource(landing_dir=str(settings.landing_dir))},
        )
        result = sensor(context)
        assert [r.partition_key for r in result.run_requests] == ["file-1"]
        instance.add_dynamic_partitions(LANDING_BATCHES.name, ["file-1"])
        again = sensor(
            dg.build_sensor_context(
                instance=instance,
                resources={"landing": LandingFolderSource(landing_dir=str(settings.landing_dir))},
            )
        )
        assert again.run_requests == [] or again.run_requests is None
