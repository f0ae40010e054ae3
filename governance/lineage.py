"""Lineage of a model version: the contracts, data, attestations, run and code it was trained from.

A registered version carries it twice: as the full JSON artifact of its run (the record) and as short version
tags (for the registry UI and searches). Promotion refuses a version whose lineage is incomplete.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from data_contracts.anonymization.attestation import frame_content_hash
from models.evaluation import BaselineComparison

TAG_PREFIX = "mesops.lineage."
# Where a version's drift reference (a sample of its exact training rows' features) is kept in its run.
REFERENCE_ARTIFACT = "reference/features.parquet"
# Tag values stay short enough to read in the registry UI; the JSON artifact holds everything.
_TAG_VALUE_LIMIT = 250
_SHORT_HASH = 12


def fingerprint(frame: pd.DataFrame) -> str:
    """sha256 of the exact rows (columns, dtypes and every cell) of a frame."""
    return frame_content_hash(frame)


class DatasetFingerprint(BaseModel):
    """One training table as it was read: its rows, its content hash and the batches it came from."""

    model_config = ConfigDict(frozen=True)

    rows: int = Field(ge=0)
    sha256: str = Field(pattern="^[0-9a-f]{64}$")
    batches: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, frame: pd.DataFrame, batches: list[str]) -> DatasetFingerprint:
        """Fingerprint a frame read from the given batches."""
        return cls(rows=len(frame), sha256=fingerprint(frame), batches=sorted(batches))


def reference_parquet(frame: pd.DataFrame) -> bytes:
    """A reference frame as Parquet (no index): the exact bytes whose sha256 lineage records."""
    buffer = io.BytesIO()
    frame.reset_index(drop=True).to_parquet(buffer, index=False)
    return buffer.getvalue()


def read_reference_parquet(data: bytes) -> pd.DataFrame:
    """The reference frame back from its Parquet bytes."""
    return pd.read_parquet(io.BytesIO(data))


class ReferenceSample(BaseModel):
    """The drift reference of a version: a seeded sample of its exact training rows' features.

    Its columns are the feature keys the service logs for the model, plus ``prediction`` (the model's own
    output on each row); ``features`` names the columns drift compares (ids such as series or day excluded).
    """

    model_config = ConfigDict(frozen=True)

    rows: int = Field(ge=0)
    sha256: str = Field(pattern="^[0-9a-f]{64}$", description="sha256 of the Parquet artifact's bytes.")
    artifact_path: str = REFERENCE_ARTIFACT
    seed: int
    split: str = Field(
        description='The rows sampled: "train", or "train+validation" when the model was refit on both.'
    )
    source_rows: int = Field(
        ge=0, description="Rows (consumption: series-days) of that split the sample was drawn from."
    )
    features: list[str] = Field(default_factory=list)

    @classmethod
    def of(
        cls, data: bytes, *, rows: int, seed: int, split: str, source_rows: int, features: list[str]
    ) -> ReferenceSample:
        """Describe the Parquet bytes of a reference frame (see :func:`reference_parquet`)."""
        return cls(
            rows=rows,
            sha256=hashlib.sha256(data).hexdigest(),
            seed=seed,
            split=split,
            source_rows=source_rows,
            features=features,
        )


def baseline_summary(comparison: BaselineComparison) -> dict[str, Any]:
    """The baseline comparison as lineage records it: its fields plus the ratio and the verdict."""
    return {
        **comparison.model_dump(mode="json"),
        "ratio": comparison.ratio,
        "beats_baseline": comparison.beats_baseline,
    }


class Lineage(BaseModel):
    """Where a model version came from; `missing_fields` says what keeps it from being promotable."""

    model_config = ConfigDict(frozen=True)

    contracts: list[str] = Field(default_factory=list, description='Data contracts used, "name@version".')
    datasets: dict[str, DatasetFingerprint] = Field(default_factory=dict)
    attestations: list[str] = Field(default_factory=list, description="Anonymization attestation ids.")
    training_window: dict[str, str] = Field(default_factory=dict, description="e.g. start/end timestamps.")
    dagster_run_id: str | None = None
    asset_keys: list[str] = Field(default_factory=list)
    code_version: str = ""
    baseline: dict[str, Any] = Field(
        default_factory=dict, description="See baseline_summary: the comparison, its ratio and verdict."
    )
    anonymization_policy: str = ""
    reference: ReferenceSample | None = Field(
        default=None, description="The drift reference (None for versions registered before it existed)."
    )

    def missing_fields(self) -> list[str]:
        """Names of the fields that are empty and make this lineage incomplete (empty list: complete)."""
        required = {
            "contracts": self.contracts,
            "datasets": self.datasets,
            "attestations": self.attestations,
            "training_window": self.training_window,
            "dagster_run_id": self.dagster_run_id,
            "code_version": self.code_version,
            "baseline": self.baseline,
        }
        return [name for name, value in required.items() if not value]

    @property
    def beats_baseline(self) -> bool:
        """The recorded verdict of the baseline comparison (False when none was recorded)."""
        return bool(self.baseline.get("beats_baseline", False))

    def as_tags(self) -> dict[str, str]:
        """Flat, short tag values under "mesops.lineage." for the registry."""
        tags = {
            "contracts": ",".join(self.contracts),
            "datasets": ",".join(
                f"{name}={fp.sha256[:_SHORT_HASH]}:{fp.rows}" for name, fp in sorted(self.datasets.items())
            ),
            "attestations": ",".join(a[:_SHORT_HASH] for a in self.attestations),
            "dagster_run_id": self.dagster_run_id or "",
            "asset_keys": ",".join(self.asset_keys),
            "code_version": self.code_version,
            "anonymization_policy": self.anonymization_policy,
        }
        if self.reference is not None:
            tags["reference"] = f"{self.reference.sha256[:_SHORT_HASH]}:{self.reference.rows}"
        tags |= {f"training_window.{key}": value for key, value in sorted(self.training_window.items())}
        for key in ("metric", "model_value", "baseline_value", "ratio", "beats_baseline"):
            if key in self.baseline:
                value = self.baseline[key]
                tags[f"baseline.{key}"] = str(value).lower() if isinstance(value, bool) else str(value)
        return {TAG_PREFIX + key: _short(value) for key, value in tags.items()}


def _short(value: str) -> str:
    if len(value) <= _TAG_VALUE_LIMIT:
        return value
    return value[: _TAG_VALUE_LIMIT - 15] + f"…(+{len(value) - _TAG_VALUE_LIMIT + 15} chars)"
