"""The attestation that travels with an anonymized table: what was done to which column, bound to the data.

The content hash binds the attestation to the exact anonymized frame, and the attestation id is derived from
the attestation's own content, so neither the data nor the attestation can be edited without it showing.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime
from enum import StrEnum
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field


class Method(StrEnum):
    """How a column was anonymized."""

    PSEUDONYM = "pseudonym"  # keyed HMAC pseudonym of the value (or of the roster person it names)
    PRESIDIO = "presidio"  # free text: personal entities found by Presidio and replaced


class ColumnAttestation(BaseModel):
    """What anonymization did to one column."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    column: str
    method: Method
    values: int = Field(description="Non-null values processed.")
    found: dict[str, int] = Field(description="Entities found, by entity type.")
    replaced: dict[str, int] = Field(description="Entities replaced, by entity type.")


class AttestationMismatchError(ValueError):
    """A frame and an attestation that do not belong together: names the field that differs."""


class Attestation(BaseModel):
    """Proof of anonymization for one table of one batch."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    attestation_id: str = Field(description="sha256 of every other field: changes when any of them does.")
    table: str
    contract: str = Field(description="Contract reference, name@version.")
    batch_id: str
    policy_version: str
    created_at: datetime
    rows: int
    columns: list[ColumnAttestation]
    content_sha256: str = Field(description="sha256 of the anonymized frame (see frame_content_hash).")
    recognizers: list[str]

    @classmethod
    def build(cls, **fields: object) -> Attestation:
        """Create an attestation, deriving its id from its content."""
        draft = cls.model_validate({"attestation_id": "", **fields})
        return draft.model_copy(update={"attestation_id": draft.expected_id()})

    def expected_id(self) -> str:
        """The id this attestation's content implies."""
        body = self.model_dump(mode="json", exclude={"attestation_id"})
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def save(self, path: Path) -> Path:
        """Write the attestation as JSON."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=2))
        return path

    @classmethod
    def load(cls, path: Path) -> Attestation:
        """Read an attestation written by :meth:`save`; its id must match its content."""
        attestation = cls.model_validate_json(path.read_text())
        if attestation.attestation_id != attestation.expected_id():
            raise AttestationMismatchError(
                f"{path.name}: attestation_id does not match its content (edited?)"
            )
        return attestation


def _cell(value: object) -> object:
    if isinstance(value, np.generic):  # numpy and Python scalars of one value hash alike
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def frame_content_hash(frame: pd.DataFrame) -> str:
    """sha256 over the column names and every cell, row by row, in order (nulls of any kind hash alike)."""
    digest = hashlib.sha256(json.dumps([str(c) for c in frame.columns]).encode())
    for row in frame.itertuples(index=False, name=None):
        digest.update(b"\n")
        digest.update(json.dumps([_cell(v) for v in row], default=str).encode())
    return digest.hexdigest()


def verify_attestation(frame: pd.DataFrame, attestation: Attestation) -> None:
    """Raise :class:`AttestationMismatchError` unless the frame is exactly the one the attestation was made for."""
    if attestation.attestation_id != attestation.expected_id():
        raise AttestationMismatchError("attestation_id: does not match the attestation's content (edited?)")
    if len(frame) != attestation.rows:
        raise AttestationMismatchError(f"rows: frame has {len(frame)}, attestation says {attestation.rows}")
    content = frame_content_hash(frame)
    if content != attestation.content_sha256:
        raise AttestationMismatchError(
            f"content_sha256: frame hashes to {content[:16]}…, attestation says "
            f"{attestation.content_sha256[:16]}… (the data changed after anonymization)"
        )
