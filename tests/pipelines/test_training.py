"""Training through Dagster on curated tables: every forecaster becomes a candidate that beats its baseline."""

from __future__ import annotations

import pytest

from governance import audit
from governance.drift import reference_features
from governance.promotion import current_version
from governance.registry import Registry
from pipelines.runner import ingest_batches, train_models
from pipelines.simulator import SimulationConfig, emit_extracts, simulate
from pipelines.training import load_candidate
from tests.personal_data import find_personal_data, planted_values

pytestmark = pytest.mark.slow

TASK_SOURCES = {"failure": "sensor_readings", "yield": "production_orders", "consumption": "energy_readings"}


def test_train_job_makes_candidates_that_beat_their_baselines(settings) -> None:
    history = simulate(SimulationConfig(seed=7, days=90, lines=2, machines_per_line=6, defect_rate=0.01))
    emit_extracts(history, settings.landing_dir / "opcenter" / "b90", mes="opcenter", batch_id="b90")
    [ingest] = ingest_batches(settings)
    assert ingest.success, ingest.failed_steps
    run = train_models(settings)
    assert run.success, run.failed_steps
    assert run.checks == {f"candidate/{t}:beats_baseline": True for t in ("failure", "yield", "consumption")}
    for task in ("failure", "yield", "consumption"):
        candidate = load_candidate(settings, task)
        assert candidate.report.baseline.beats_baseline
        assert candidate.report.task == task
        assert all(d.sha256 and d.attestations and d.contract.endswith("@1.0.0") for d in candidate.datasets)
        assert len(candidate.input_example) > 0
    failure = load_candidate(settings, "failure")
    assert 0 <= failure.model.predict_proba(failure.input_example).min() <= 1
    # registered in MLflow with complete lineage; the first version of each is champion, audited
    registry = Registry.from_settings(settings)
    url = settings.resolved_database_url
    for task in ("failure", "yield", "consumption"):
        name = f"mesops-{task}"
        assert current_version(url, name) == "1" == registry.alias_version(name, "champion")
        lineage = registry.lineage(name, "1")
        assert lineage.missing_fields() == [] and lineage.dagster_run_id == run.run_id
        assert f"curated/{TASK_SOURCES[task]}" in lineage.asset_keys
        # the drift reference: a sample of the training rows, logged with its hash in lineage
        reference = reference_features(registry, name, "1")
        assert lineage.reference is not None
        assert lineage.reference.rows == len(reference) <= settings.drift_reference_rows
        assert set(lineage.reference.features) < set(reference.columns) and "prediction" in reference.columns
    assert audit.verify(url).ok
    actions = [(e.event.action, e.event.model_name) for e in audit.entries(url)]
    assert ("register", "mesops-yield") in actions and ("promote", "mesops-yield") in actions
    # no personal data in the candidates, the MLflow store or its artifacts
    values = planted_values(history.tables["employees"])
    assert find_personal_data(settings.home / "candidates", values) == []
    assert find_personal_data(settings.home / "mlflow", values) == []
