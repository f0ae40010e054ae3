"""The registry adapter logs a complete run, registers a loadable version with lineage tags, moves aliases."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from governance.lineage import (
    REFERENCE_ARTIFACT,
    TAG_PREFIX,
    DatasetFingerprint,
    Lineage,
    ReferenceSample,
    baseline_summary,
    fingerprint,
    read_reference_parquet,
    reference_parquet,
)
from governance.registry import BEATS_BASELINE_TAG, RegisteredVersion, Registry, UnknownVersionError
from models.evaluation import BaselineComparison, EvaluationReport

NAME = "mesops-consumption"


class ScaledForecaster:
    """A picklable stand-in for a real forecaster: predicts a scaled sum of the features."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return (features["kw"] + features["load"]).to_numpy() * self.scale


FRAME = pd.DataFrame({"kw": [1.0, 2.5, 4.0, 8.0], "load": [0.1, 0.2, 0.3, 0.4]})


def _report(model_mae: float = 1.0) -> EvaluationReport:
    return EvaluationReport(
        task="consumption",
        dataset="simulator",
        split={"train_end": "2025-03-01", "test_start": "2025-03-08"},
        rows={"train": 400, "validation": 50, "test": 60},
        features=["kw", "load"],
        metrics={"mae": model_mae, "rmse": 1.7},
        baseline=BaselineComparison(
            metric="mae",
            higher_is_better=False,
            model_value=model_mae,
            baseline_name="seasonal naive",
            baseline_value=2.0,
        ),
    )


def _lineage(report: EvaluationReport) -> Lineage:
    return Lineage(
        contracts=["energy_readings@1.2.0", "machines@1.0.0"],
        datasets={"energy_readings": DatasetFingerprint.of(FRAME, ["B-2", "B-1"])},
        attestations=["a" * 64, "b" * 64],
        training_window={"start": "2025-01-01T00:00:00", "end": "2025-03-01T00:00:00"},
        dagster_run_id="run-123",
        asset_keys=["curated/energy_readings", "models/consumption"],
        code_version="abc1234",
        baseline=baseline_summary(report.baseline),
        anonymization_policy="1.0.0",
    )


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    root = tmp_path_factory.mktemp("mlflow")
    return Registry(f"sqlite:///{root / 'mlflow.db'}", str(root / "artifacts"))


@pytest.fixture(scope="module")
def registered(registry: Registry) -> RegisteredVersion:
    report = _report()
    return registry.register(
        "consumption", ScaledForecaster(3.0), report, _lineage(report), {"lr": 0.05, "leaves": 31}, FRAME
    )


# --- lineage ------------------------------------------------------------------------------------------
def test_fingerprint_changes_with_any_cell_and_names_rows() -> None:
    changed = FRAME.copy()
    changed.loc[2, "kw"] = 4.000001
    assert fingerprint(FRAME) == fingerprint(FRAME.copy())
    assert fingerprint(FRAME) != fingerprint(changed)
    print_ = DatasetFingerprint.of(FRAME, ["B-2", "B-1"])
    assert (print_.rows, print_.batches) == (4, ["B-1", "B-2"])


def test_missing_fields_names_every_empty_requirement() -> None:
    complete = _lineage(_report())
    assert complete.missing_fields() == []
    gaps = complete.model_copy(update={"attestations": [], "dagster_run_id": None, "baseline": {}})
    assert gaps.missing_fields() == ["attestations", "dagster_run_id", "baseline"]
    assert Lineage().missing_fields() == [
        "contracts",
        "datasets",
        "attestations",
        "training_window",
        "dagster_run_id",
        "code_version",
        "baseline",
    ]


def test_tags_are_flat_short_and_prefixed() -> None:
    lineage = _lineage(_report()).model_copy(update={"asset_keys": [f"asset/{i:04d}" for i in range(200)]})
    tags = lineage.as_tags()
    assert all(key.startswith(TAG_PREFIX) for key in tags)
    assert all(isinstance(value, str) and len(value) <= 250 for value in tags.values())
    assert tags[TAG_PREFIX + "contracts"] == "energy_readings@1.2.0,machines@1.0.0"
    assert tags[TAG_PREFIX + "baseline.beats_baseline"] == "true"
    assert tags[TAG_PREFIX + "training_window.end"] == "2025-03-01T00:00:00"
    assert tags[TAG_PREFIX + "datasets"] == f"energy_readings={fingerprint(FRAME)[:12]}:4"


# --- registry -----------------------------------------------------------------------------------------
def test_from_settings_keeps_everything_under_home(settings) -> None:  # type: ignore[no-untyped-def]
    registry = Registry.from_settings(settings)
    assert registry.tracking_uri == f"sqlite:///{settings.home / 'mlflow' / 'mlflow.db'}"
    assert Path(registry.artifact_location) == settings.home / "mlflow" / "artifacts"


def test_register_logs_params_metrics_tags_and_artifacts(
    registry: Registry, registered: RegisteredVersion
) -> None:
    assert (registered.name, registered.version) == (NAME, "1")
    run = registry.client.get_run(registered.run_id)
    assert registry.client.get_experiment(run.info.experiment_id).name == NAME
    assert run.data.params == {"lr": "0.05", "leaves": "31"}
    assert run.data.metrics["mae"] == 1.0
    assert run.data.metrics["baseline.mae"] == 2.0
    assert run.data.metrics["baseline.ratio"] == 0.5
    assert run.data.metrics["baseline.beats"] == 1.0
    assert run.data.metrics["rows.test"] == 60
    artifacts = {a.path for a in registry.client.list_artifacts(registered.run_id)}
    assert {"evaluation_report.json", "lineage.json", "features.json", "model"} <= artifacts
    assert registry.report(NAME, "1") == _report()
    info = registry.version(NAME, "1")
    assert info.run_id == registered.run_id
    assert info.tags[BEATS_BASELINE_TAG] == "true"
    assert info.tags[TAG_PREFIX + "dagster_run_id"] == "run-123"


def test_registered_model_loads_and_predicts_the_same(
    registry: Registry, registered: RegisteredVersion
) -> None:
    loaded = registry.load(NAME, registered.version)
    assert isinstance(loaded, ScaledForecaster)
    np.testing.assert_allclose(loaded.predict(FRAME), ScaledForecaster(3.0).predict(FRAME))


def test_lineage_round_trips(registry: Registry, registered: RegisteredVersion) -> None:
    assert registry.lineage(NAME, registered.version) == _lineage(_report())


def test_aliases_point_load_and_disappear(registry: Registry, registered: RegisteredVersion) -> None:
    worse = _report(model_mae=2.5)
    second = registry.register("consumption", ScaledForecaster(5.0), worse, _lineage(worse), {}, FRAME)
    assert second.version == "2"
    assert registry.version(NAME, "2").tags[BEATS_BASELINE_TAG] == "false"
    registry.set_alias(NAME, "champion", "1")
    registry.set_alias(NAME, "challenger", "2")
    assert registry.alias_version(NAME, "champion") == "1"
    assert registry.load(NAME, "challenger").scale == 5.0  # type: ignore[attr-defined]
    assert [(v.version, v.aliases) for v in registry.versions(NAME)] == [
        ("1", ["champion"]),
        ("2", ["challenger"]),
    ]
    registry.delete_alias(NAME, "challenger")
    registry.delete_alias(NAME, "challenger")  # deleting an unset alias is a no-op
    assert registry.alias_version(NAME, "challenger") is None


def test_unknown_versions_models_and_aliases_are_named(
    registry: Registry, registered: RegisteredVersion
) -> None:
    with pytest.raises(UnknownVersionError, match="no version '99'"):
        registry.version(NAME, "99")
    with pytest.raises(UnknownVersionError, match="no alias 'canary'"):
        registry.load(NAME, "canary")
    assert registry.alias_version("mesops-nothing", "champion") is None
    assert registry.versions("mesops-nothing") == []


# --- the drift reference --------------------------------------------------------------------------------
REFERENCE_MODEL = "mesops-yield"  # its own registered model: the versions above stay 1 and 2


def _with_reference(frame: pd.DataFrame) -> tuple[Lineage, bytes]:
    data = reference_parquet(frame)
    record = ReferenceSample.of(
        data, rows=len(frame), seed=3, split="train", source_rows=40, features=["kw", "load"]
    )
    return _lineage(_report()).model_copy(update={"reference": record}), data


def test_reference_round_trips_with_its_hash_in_lineage(registry: Registry) -> None:
    frame = FRAME.assign(prediction=ScaledForecaster(2.0).predict(FRAME))
    lineage, data = _with_reference(frame)
    made = registry.register("yield", ScaledForecaster(2.0), _report(), lineage, {}, FRAME, reference=data)
    stored = registry.lineage(REFERENCE_MODEL, made.version).reference
    assert stored is not None and stored == lineage.reference
    assert (stored.rows, stored.seed, stored.split, stored.artifact_path) == (
        4,
        3,
        "train",
        REFERENCE_ARTIFACT,
    )
    back = registry.artifact_bytes(REFERENCE_MODEL, made.version, REFERENCE_ARTIFACT)
    assert back is not None and hashlib.sha256(back).hexdigest() == stored.sha256
    pd.testing.assert_frame_equal(read_reference_parquet(back), frame)
    tag = registry.version(REFERENCE_MODEL, made.version).tags[TAG_PREFIX + "reference"]
    assert tag == f"{stored.sha256[:12]}:4"


def test_reference_bytes_must_match_their_lineage_record(registry: Registry) -> None:
    lineage, data = _with_reference(FRAME.assign(prediction=1.0))
    before = len(registry.versions(REFERENCE_MODEL))
    with pytest.raises(ValueError, match="reference: its bytes hash to"):
        registry.register(
            "yield", ScaledForecaster(1.0), _report(), lineage, {}, FRAME, reference=data + b"x"
        )
    with pytest.raises(ValueError, match=r"together with lineage\.reference"):
        registry.register(
            "yield", ScaledForecaster(1.0), _report(), _lineage(_report()), {}, FRAME, reference=data
        )
    assert len(registry.versions(REFERENCE_MODEL)) == before  # refused before any run or version was made


def test_versions_without_a_reference_still_load(registry: Registry, registered: RegisteredVersion) -> None:
    old_document = _lineage(_report()).model_dump(mode="json")
    old_document.pop("reference")
    assert Lineage.model_validate(old_document).reference is None
    assert registry.lineage(NAME, registered.version).reference is None
    assert registry.artifact_bytes(NAME, registered.version, REFERENCE_ARTIFACT) is None
    assert TAG_PREFIX + "reference" not in registry.version(NAME, registered.version).tags
