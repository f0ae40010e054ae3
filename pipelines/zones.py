"""Where each stage's tables live: Parquet files per table and batch under MESOPS_HOME's data zones.

landing/_landed/<table>/<batch>.parquet   text as received (personal data allowed: landing zone only)
anonymized/<table>/<batch>.parquet         pseudonyms and redacted text
attestations/<table>/<batch>.json          what anonymization replaced, under which policy
curated/<table>/<batch>.parquet            typed, contract-valid rows
quarantine/<table>/<batch>.parquet         rows that broke the contract, original text + reasons
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


@dataclass(frozen=True)
class ZoneStore:
    """Reads and writes the zone tables of one MESOPS_HOME."""

    home: Path

    def landed_path(self, table: str, batch_id: str) -> Path:
        return self.home / "landing" / "_landed" / table / f"{batch_id}.parquet"

    def anonymized_path(self, table: str, batch_id: str) -> Path:
        return self.home / "anonymized" / table / f"{batch_id}.parquet"

    def attestation_path(self, table: str, batch_id: str) -> Path:
        return self.home / "attestations" / table / f"{batch_id}.json"

    def curated_path(self, table: str, batch_id: str) -> Path:
        return self.home / "curated" / table / f"{batch_id}.parquet"

    def quarantine_path(self, table: str, batch_id: str) -> Path:
        return self.home / "quarantine" / table / f"{batch_id}.parquet"

    def write(self, frame: pd.DataFrame, path: Path) -> str:
        """Write atomically (a reader never sees half a file); returns the file's sha256."""
        return self.write_table(to_arrow(frame), path)

    def write_table(self, table: pa.Table, path: Path) -> str:
        """Write an Arrow table made by :func:`to_arrow` atomically; returns the file's sha256."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".parquet.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, path)
        return file_sha256(path)

    def write_text(self, text: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    @staticmethod
    def read(path: Path) -> pd.DataFrame:
        return to_frame(ZoneStore.read_table(path))

    @staticmethod
    def read_table(path: Path) -> pa.Table:
        """The zone file as an Arrow table (:func:`to_frame` turns it into the frame :meth:`read` gives)."""
        return pq.read_table(path, use_pandas_metadata=True)

    def read_all(self, zone: str, table: str) -> pd.DataFrame:
        """Every batch of a table in one zone ('curated', 'quarantine', 'anonymized'), oldest batch first."""
        files = self.batch_files(zone, table)
        if not files:
            return pd.DataFrame()
        return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)

    def batch_files(self, zone: str, table: str) -> list[Path]:
        folder = self.home / ("landing/_landed" if zone == "landed" else zone) / table
        return sorted(folder.glob("*.parquet"))


def to_arrow(frame: pd.DataFrame) -> pa.Table:
    """The frame as the Arrow table ``DataFrame.to_parquet(index=False)`` writes (pandas metadata kept)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if frame.attrs:
        metadata = {**(table.schema.metadata or {}), b"PANDAS_ATTRS": json.dumps(frame.attrs).encode()}
        table = table.replace_schema_metadata(metadata)
    return table


def to_frame(table: pa.Table) -> pd.DataFrame:
    """An Arrow table read from a zone as the frame ``pd.read_parquet`` gives (same dtypes and attrs)."""
    frame = table.to_pandas()
    if table.schema.metadata and b"PANDAS_ATTRS" in table.schema.metadata:
        frame.attrs = json.loads(table.schema.metadata[b"PANDAS_ATTRS"])
    return frame


def file_sha256(path: Path) -> str:
    """Content hash of a file, for lineage."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
