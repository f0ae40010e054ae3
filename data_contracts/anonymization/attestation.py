"""The attestation that travels with an anonymized table: what was done to which column, bound to the data.

The content hash binds the attestation to the exact anonymized frame, and the attestation id is derived from
the attestation's own content, so neither the data nor the attestation can be edited without it showing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
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


def frame_content_hash(frame: pd.DataFrame, table: pa.Table | None = None) -> str:
    """sha256 over column names, dtypes and every cell, column by column (vectorized; nulls of any kind alike).

    Each column contributes its null mask, the length of every cell's text and the texts themselves, so the
    concatenation is unambiguous: no two different frames hash alike short of a sha256 collision.

    ``table`` may be the Arrow form of this very frame (``pa.Table.from_pandas`` of it, or the Parquet table it
    was read from): its text and integer columns then give their cells without converting the frame's Python
    objects again. The hash is the same either way; columns of other types are always taken from the frame.
    """
    header = [(str(name), str(frame[name].dtype)) for name in frame.columns]
    arrow = _arrow_columns(frame, table)
    return _content_hash(
        header, (_as_text_array(frame[name], arrow[position]) for position, name in enumerate(frame.columns))
    )


def table_content_hash(table: pa.Table) -> str | None:
    """:func:`frame_content_hash` of the frame ``to_frame(table)`` would give, without building that frame.

    Only for tables of text, integer, boolean and all-null columns (a landed table), whose cells convert
    one-to-one; None for any other table, which then goes through the frame.
    """
    if not all(_one_to_one(field.type) for field in table.schema):
        return None
    if table.schema.metadata and b"PANDAS_ATTRS" in table.schema.metadata:
        return None
    # the frame's dtypes come from the schema and its pandas metadata, never from the cells: no rows needed
    empty = table.slice(0, 0).to_pandas()
    if [str(c) for c in empty.columns] != table.column_names:
        return None
    header = [(str(name), str(empty[name].dtype)) for name in empty.columns]
    if any(
        not _same_cells(empty.dtypes.iloc[i], t) and not pa.types.is_null(t)
        for i, t in enumerate(table.schema.types)
    ):
        return None
    return _content_hash(header, (_chunked_as_text(column) for column in table.columns))


def _one_to_one(arrow_type: pa.DataType) -> bool:
    return (
        pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
        or pa.types.is_null(arrow_type)
        or pa.types.is_integer(arrow_type)
        or pa.types.is_boolean(arrow_type)
    )


def _chunked_as_text(column: pa.ChunkedArray) -> pa.LargeStringArray:
    # an all-null column is Arrow's null type; the frame path gives the same all-null text for it
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return pc.cast(array, pa.large_string())


def _content_hash(header: list[tuple[str, str]], columns: Iterable[pa.LargeStringArray]) -> str:
    digest = hashlib.sha256(json.dumps(header).encode())
    for texts in columns:
        offsets = np.frombuffer(texts.buffers()[1], dtype=np.int64)[
            texts.offset : texts.offset + len(texts) + 1
        ]
        digest.update(texts.is_null().to_numpy(zero_copy_only=False).tobytes())
        digest.update(np.diff(offsets).tobytes())
        digest.update(memoryview(texts.buffers()[2] or b"")[offsets[0] : offsets[-1]])
    return digest.hexdigest()


def _arrow_columns(frame: pd.DataFrame, table: pa.Table | None) -> list[pa.ChunkedArray | None]:
    """Per frame column, the table's column when it can stand for the frame's cells, else None."""
    if table is None or table.num_rows != len(frame) or table.column_names != [str(c) for c in frame.columns]:
        return [None] * len(frame.columns)
    return [
        column if _same_cells(frame.dtypes.iloc[i], column.type) else None
        for i, column in enumerate(table.columns)
    ]


def _same_cells(dtype: object, arrow_type: pa.DataType) -> bool:
    # object text <-> Arrow string and numpy ints/bools <-> the same Arrow type convert one-to-one, nulls included;
    # anything else (floats, datetimes, extension dtypes) takes the frame path so no conversion rule is assumed.
    if not isinstance(dtype, np.dtype):
        return False
    if dtype.kind == "O":
        return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
    if dtype.kind in "iub":
        return bool(arrow_type == pa.from_numpy_dtype(dtype))
    return False


def _as_text_array(column: pd.Series, arrow: pa.ChunkedArray | None = None) -> pa.LargeStringArray:
    """The column as Arrow text, nulls kept; C-speed for text and numeric columns, str() for mixed objects."""
    if arrow is not None:
        array = arrow.combine_chunks() if arrow.num_chunks != 1 else arrow.chunk(0)
        return pc.cast(array, pa.large_string())
    try:
        array = pa.array(column.to_numpy(dtype=object), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed Python types in one object column
        array = pa.array([None if _missing(v) else str(v) for v in column], type=pa.large_string())
    return pc.cast(array, pa.large_string())


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def verify_attestation(frame: pd.DataFrame, attestation: Attestation, table: pa.Table | None = None) -> None:
    """Raise :class:`AttestationMismatchError` unless the frame is exactly the one the attestation was made for.

    ``table``: the Arrow table the frame was read from, if at hand (see :func:`frame_content_hash`).
    """
    if attestation.attestation_id != attestation.expected_id():
        raise AttestationMismatchError("attestation_id: does not match the attestation's content (edited?)")
    if len(frame) != attestation.rows:
        raise AttestationMismatchError(f"rows: frame has {len(frame)}, attestation says {attestation.rows}")
    content = frame_content_hash(frame, table)
    if content != attestation.content_sha256:
        raise AttestationMismatchError(
            f"content_sha256: frame hashes to {content[:16]}…, attestation says "
            f"{attestation.content_sha256[:16]}… (the data changed after anonymization)"
        )
