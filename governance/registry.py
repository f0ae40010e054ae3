"""The model registry adapter: the one module of mesops that talks to MLflow.

Every trained forecaster becomes one MLflow run (params, metrics, the evaluation report and lineage as JSON,
the feature list, the model as a pyfunc) and one new version of the registered model "mesops-<task>", tagged
with its lineage. Versions are addressed by aliases ("champion", "challenger"), never by stages. Nothing here
changes global MLflow state: every call goes through this object's own client and URIs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import warnings
from datetime import UTC, datetime
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.tracking import MlflowClient
from pydantic import BaseModel, ConfigDict

from governance.lineage import Lineage
from mesops.settings import Settings, disable_telemetry
from models.evaluation import EvaluationReport

MODEL_PREFIX = "mesops-"
BEATS_BASELINE_TAG = "mesops.beats_baseline"
REPORT_ARTIFACT = "evaluation_report.json"
LINEAGE_ARTIFACT = "lineage.json"
FEATURES_ARTIFACT = "features.json"
MODEL_ARTIFACT = "model"
# What the pyfunc environment needs; listed explicitly so MLflow does not load the model in a subprocess to
# guess them.
_REQUIREMENTS = ("mlflow", "pandas", "numpy", "cloudpickle", "pydantic")


class UnknownVersionError(LookupError):
    """The registered model or the version (or alias) asked for does not exist."""


class RegisteredVersion(BaseModel):
    """What `Registry.register` created: the registered model, its new version and the run behind it."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    run_id: str


class VersionInfo(BaseModel):
    """One version of a registered model as the registry knows it."""

    model_config = ConfigDict(frozen=True)

    version: str
    run_id: str
    tags: dict[str, str]
    aliases: list[str]
    created: datetime


# MLflow warns when a PythonModel subclass has an untyped predict, and re-enables that warning itself, so no
# filter reaches it; ours is untyped on purpose (see predict). Mute the display just while the class is made.
_show_warning, warnings.showwarning = warnings.showwarning, lambda *args, **kwargs: None


class ForecasterModel(mlflow.pyfunc.PythonModel):
    """The pyfunc wrapper around a picklable mesops forecaster: predict calls the forecaster's predict."""

    def __init__(self, forecaster: object) -> None:
        self.forecaster = forecaster

    # The frame-level method of each forecaster, most specific first: consumption forecasts with intervals
    # from feature rows, failure answers calibrated probabilities, yield (and simple models) predict.
    FRAME_METHODS = ("predict_features", "predict_proba", "predict")

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        """Forecast for the given feature rows."""
        # Untyped on purpose: MLflow 3 would otherwise derive (and enforce) a schema from the type hints.
        for method in self.FRAME_METHODS:
            if hasattr(self.forecaster, method):
                return getattr(self.forecaster, method)(model_input)
        raise TypeError(f"{type(self.forecaster).__name__} has none of {self.FRAME_METHODS}")


warnings.showwarning = _show_warning


def model_name(task: str) -> str:
    """The registered model name of a task."""
    return f"{MODEL_PREFIX}{task}"


class Registry:
    """MLflow tracking and model registry at one tracking URI, with artifacts under one location."""

    def __init__(self, tracking_uri: str, artifact_location: str) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_location = artifact_location

    @classmethod
    def from_settings(cls, settings: Settings) -> Registry:
        """The configured registry; by default a SQLite store and an artifact folder under MESOPS_HOME/mlflow."""
        root = settings.home.resolve() / "mlflow"
        return cls(
            settings.mlflow_tracking_uri or f"sqlite:///{root / 'mlflow.db'}",
            settings.mlflow_artifact_location or str(root / "artifacts"),
        )

    @cached_property
    def client(self) -> MlflowClient:
        """The MLflow client (created on first use; the SQLite store creates its tables then, ~10 s)."""
        disable_telemetry()
        # MLflow logs every artifact copy and environment guess at INFO/WARNING; users see only its errors.
        logging.getLogger("mlflow").setLevel(logging.ERROR)
        if self.tracking_uri.startswith("sqlite:///"):
            Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    # --- registering ----------------------------------------------------------------------------------
    def register(
        self,
        task: str,
        model: object,
        report: EvaluationReport,
        lineage: Lineage,
        params: dict[str, object],
        input_example: pd.DataFrame,
        *,
        reference: bytes | None = None,
    ) -> RegisteredVersion:
        """Log one run for a trained forecaster and register it as a new version of "mesops-<task>".

        ``reference``: the Parquet bytes of the drift reference that ``lineage.reference`` describes (both or
        neither); logged at its artifact path.
        """
        _check_reference(lineage, reference)
        name = model_name(task)
        experiment_id = self._experiment(name)
        run = self.client.create_run(
            experiment_id, tags={"mesops.task": task, "mesops.dataset": report.dataset}
        )
        run_id = run.info.run_id
        try:
            self._log_run(run_id, report, lineage, params)
            if reference is not None and lineage.reference is not None:
                self._log_bytes(run_id, reference, lineage.reference.artifact_path)
            with tempfile.TemporaryDirectory() as tmp:
                _save_pyfunc(Path(tmp) / MODEL_ARTIFACT, model, input_example)
                self.client.log_artifacts(run_id, str(Path(tmp) / MODEL_ARTIFACT), MODEL_ARTIFACT)
        except BaseException:
            self.client.set_terminated(run_id, status="FAILED")
            raise
        self.client.set_terminated(run_id, status="FINISHED")
        self._ensure_registered_model(name)
        tags = lineage.as_tags() | {BEATS_BASELINE_TAG: str(report.baseline.beats_baseline).lower()}
        created = self.client.create_model_version(
            name, source=f"{run.info.artifact_uri}/{MODEL_ARTIFACT}", run_id=run_id, tags=tags
        )
        return RegisteredVersion(name=name, version=str(created.version), run_id=run_id)

    def _experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = f"{self.artifact_location.rstrip('/')}/{name}"
        return self.client.create_experiment(name, artifact_location=location)

    def _ensure_registered_model(self, name: str) -> None:
        try:
            self.client.get_registered_model(name)
        except MlflowException as err:
            if not _not_found(err):
                raise
            self.client.create_registered_model(name)

    def _log_run(
        self, run_id: str, report: EvaluationReport, lineage: Lineage, params: dict[str, object]
    ) -> None:
        baseline = report.baseline
        metrics = dict(report.metrics) | {
            f"baseline.{baseline.metric}": baseline.baseline_value,
            "baseline.model_value": baseline.model_value,
            "baseline.ratio": baseline.ratio,
            "baseline.beats": float(baseline.beats_baseline),
        }
        metrics |= {f"rows.{split}": float(rows) for split, rows in report.rows.items()}
        for key, value in params.items():
            self.client.log_param(run_id, key, _param_text(value))
        for key, value in metrics.items():
            self.client.log_metric(run_id, key, float(value))
        self.client.set_tag(run_id, BEATS_BASELINE_TAG, str(baseline.beats_baseline).lower())
        for key, value in lineage.as_tags().items():
            self.client.set_tag(run_id, key, value)
        self.client.log_text(run_id, report.model_dump_json(indent=2), REPORT_ARTIFACT)
        self.client.log_text(run_id, lineage.model_dump_json(indent=2), LINEAGE_ARTIFACT)
        self.client.log_text(run_id, json.dumps(report.features, indent=2), FEATURES_ARTIFACT)

    def _log_bytes(self, run_id: str, data: bytes, artifact_path: str) -> None:
        folder, _, file_name = artifact_path.rpartition("/")
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / file_name).write_bytes(data)
            self.client.log_artifact(run_id, str(Path(tmp) / file_name), folder or None)

    # --- reading --------------------------------------------------------------------------------------
    def versions(self, name: str) -> list[VersionInfo]:
        """Every version of a registered model, oldest first (empty when the model does not exist)."""
        found = self.client.search_model_versions(f"name = '{name}'")
        # Searching does not return aliases; the registered model holds them.
        by_version: dict[str, list[str]] = {}
        for alias, version in (self._aliases(name) if found else {}).items():
            by_version.setdefault(str(version), []).append(alias)
        infos = (
            _info(v).model_copy(update={"aliases": sorted(by_version.get(str(v.version), []))}) for v in found
        )
        return sorted(infos, key=lambda info: int(info.version))

    def version(self, name: str, version: str) -> VersionInfo:
        """One version; UnknownVersionError when the model or version does not exist."""
        try:
            return _info(self.client.get_model_version(name, str(version)))
        except MlflowException as err:
            if _not_found(err):
                raise UnknownVersionError(f"model {name!r} has no version {version!r}") from err
            raise

    def alias_version(self, name: str, alias: str) -> str | None:
        """The version an alias points at in MLflow, or None (alias unset or model unknown)."""
        try:
            version = self._aliases(name).get(alias)
        except MlflowException as err:
            if _not_found(err):
                return None
            raise
        return None if version is None else str(version)

    def _aliases(self, name: str) -> dict[str, str]:
        return {alias: str(v) for alias, v in self.client.get_registered_model(name).aliases.items()}

    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Point an alias at a version (only governance.promotion should call this)."""
        self.client.set_registered_model_alias(name, alias, str(version))

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove an alias; nothing happens when it is not set."""
        if self.alias_version(name, alias) is not None:
            self.client.delete_registered_model_alias(name, alias)

    def resolve(self, name: str, version_or_alias: str) -> str:
        """The version number a version number or an alias stands for."""
        if str(version_or_alias).isdigit():
            return self.version(name, str(version_or_alias)).version
        version = self.alias_version(name, version_or_alias)
        if version is None:
            raise UnknownVersionError(f"model {name!r} has no alias {version_or_alias!r}")
        return version

    def load(self, name: str, version_or_alias: str) -> object:
        """The forecaster object of a version (by number or alias), as it was registered."""
        version = self.resolve(name, version_or_alias)
        source = self.client.get_model_version(name, version).source
        pyfunc = mlflow.pyfunc.load_model(source)
        return pyfunc.unwrap_python_model().forecaster

    def lineage(self, name: str, version: str) -> Lineage:
        """The lineage logged with a version's run."""
        return Lineage.model_validate_json(self._artifact_text(name, version, LINEAGE_ARTIFACT))

    def report(self, name: str, version: str) -> EvaluationReport:
        """The evaluation report logged with a version's run."""
        return EvaluationReport.model_validate_json(self._artifact_text(name, version, REPORT_ARTIFACT))

    def artifact_bytes(self, name: str, version: str, artifact: str) -> bytes | None:
        """The bytes of one artifact of a version's run, or None when the run has no such artifact."""
        run_id = self.version(name, version).run_id
        folder = artifact.rpartition("/")[0]
        if artifact not in {a.path for a in self.client.list_artifacts(run_id, folder or None)}:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            return Path(self.client.download_artifacts(run_id, artifact, tmp)).read_bytes()

    def _artifact_text(self, name: str, version: str, artifact: str) -> str:
        run_id = self.version(name, version).run_id
        with tempfile.TemporaryDirectory() as tmp:
            path = self.client.download_artifacts(run_id, artifact, tmp)
            return Path(path).read_text()


def _save_pyfunc(path: Path, model: object, input_example: pd.DataFrame) -> None:
    wrapper = ForecasterModel(model)
    signature = infer_signature(input_example, wrapper.predict(None, input_example))
    mlflow.pyfunc.save_model(
        str(path),
        python_model=wrapper,
        signature=signature,
        input_example=input_example,
        pip_requirements=[f"{package}=={metadata.version(package)}" for package in _REQUIREMENTS],
    )


def _check_reference(lineage: Lineage, reference: bytes | None) -> None:
    """The reference bytes and their lineage record come together and agree (checked before any run)."""
    record = lineage.reference
    if (record is None) != (reference is None):
        raise ValueError(
            "reference: give the drift reference's bytes together with lineage.reference, or neither"
        )
    if record is not None and reference is not None:
        digest = hashlib.sha256(reference).hexdigest()
        if digest != record.sha256:
            raise ValueError(
                f"reference: its bytes hash to {digest[:12]}…, lineage.reference.sha256 says "
                f"{record.sha256[:12]}…"
            )


def _info(version: Any) -> VersionInfo:
    return VersionInfo(
        version=str(version.version),
        run_id=version.run_id,
        tags=dict(version.tags),
        aliases=sorted(version.aliases),
        created=datetime.fromtimestamp(version.creation_timestamp / 1000, tz=UTC),
    )


def _not_found(err: MlflowException) -> bool:
    return err.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST)


def _param_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
