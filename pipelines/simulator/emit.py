"""Write a simulated history as one landing batch in the shape a real MES extract has.

Opcenter: OData v4 pages ``<EntitySet>-0001.json`` with ``@odata.nextLink``; Plex: ``<Resource>.json`` as
``{"data": [...]}``; file: ``<entity>.csv`` or ``.parquet``. Tables a kind does not carry are dropped as files
in the same batch. Vendor field names come from the contract mappings; rows keep the canonical order. The
manifest is written last, so a batch folder with ``_manifest.json`` is complete.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from data_contracts.contract import Contract, SourceKind, SourceMapping, load_contracts
from pipelines.adapters.opcenter import write_odata_pages
from pipelines.simulator.config import default_contracts_dir

if TYPE_CHECKING:
    from pipelines.simulator.history import PlantHistory

MANIFEST = "_manifest.json"
CREATED_BY = "mesops-simulator"
ISO_SECONDS = "%Y-%m-%dT%H:%M:%S"
PLEX_ANDON, PLEX_STATUS = "plex_andon", "plex_status"


def wire_value(value: object) -> object:
    """A cell as JSON wants it: ISO text for times and dates, python numbers, None for every kind of null."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, pd.Timestamp | datetime):
        return value.strftime(ISO_SECONDS)
    if isinstance(value, date):
        return value.isoformat()
    return value


def wire_column(series: pd.Series) -> list[object]:
    """A whole column as wire values (vectorized for the common dtypes)."""
    if pd.api.types.is_datetime64_any_dtype(series):
        text = series.dt.strftime(ISO_SECONDS)
        return [None if pd.isna(v) else v for v in text]
    if series.dtype == "int64":
        return series.tolist()
    if series.dtype == "float64":
        return [None if math.isnan(v) else v for v in series.tolist()]
    return [wire_value(v) for v in series.tolist()]


def _records(frame: pd.DataFrame, mapping: SourceMapping) -> list[dict[str, object]]:
    """Rows as dicts keyed by the vendor field names of a mapping, in mapping field order."""
    fields = list(mapping.fields.items())  # vendor -> canonical
    columns = [wire_column(frame[canonical]) for _, canonical in fields]
    names = [vendor for vendor, _ in fields]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def _dump(path: Path, payload: object) -> None:
    path.write_text(json.dumps(payload, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")


def _parquet_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns that mix python types (planted defects) become text so Parquet can store them."""
    out = frame.copy()
    for name in out.columns:
        if out[name].dtype != object:
            continue
        types = {type(v) for v in out[name] if v is not None and not (isinstance(v, float) and math.isnan(v))}
        if len(types) > 1 or types & {pd.Timestamp, int, float}:
            out[name] = [None if (w := wire_value(v)) is None else str(w) for v in out[name]]
    return out


def write_file_drop(frame: pd.DataFrame, path: Path) -> Path:
    """Write a canonical frame as CSV (UTF-8, header, comma, ISO times) or Parquet, by the path's suffix."""
    if path.suffix == ".parquet":
        table = pa.Table.from_pandas(_parquet_ready(frame), preserve_index=False)
        pq.write_table(table, path)
        return path
    out = frame.copy()
    for name in out.columns:
        if out[name].dtype == object:
            out[name] = [wire_value(v) for v in out[name]]
    out.to_csv(path, index=False, date_format=ISO_SECONDS, lineterminator="\n", encoding="utf-8")
    return path


def _opcenter(frame: pd.DataFrame, mapping: SourceMapping, folder: Path, page_size: int) -> list[str]:
    return write_odata_pages(folder, mapping.entity, _records(frame, mapping), page_size)


def _plex_parts(
    table: str, frame: pd.DataFrame, contract: Contract
) -> list[tuple[SourceMapping, pd.DataFrame]]:
    """Plex resources of a table; machine events split into status changes and Andon calls."""
    mappings = contract.sources_of_kind(SourceKind.PLEX)
    if table != "machine_events":
        return [(mappings[0], frame)]
    andon = (frame["state"] == "down") & frame["comment"].notna()
    return [(contract.sources[PLEX_STATUS], frame[~andon]), (contract.sources[PLEX_ANDON], frame[andon])]


def emit_extracts(
    history: PlantHistory,
    batch_dir: Path,
    mes: Literal["opcenter", "plex", "file"],
    page_size: int = 5000,
    file_format: Literal["csv", "parquet"] = "csv",
    batch_id: str | None = None,
    contracts_dir: Path | None = None,
) -> Path:
    """Write ``history`` into the batch folder ``batch_dir`` (batch id defaults to its name); returns it."""
    if mes not in ("opcenter", "plex", "file"):
        raise ValueError(f"mes: must be opcenter, plex or file, got {mes!r}")
    if file_format not in ("csv", "parquet"):
        raise ValueError(f"file_format: must be csv or parquet, got {file_format!r}")
    if page_size < 1:
        raise ValueError(f"page_size: must be at least 1, got {page_size}")
    if (batch_dir / MANIFEST).exists():
        raise FileExistsError(f"batch_dir: {batch_dir} already holds a complete batch ({MANIFEST})")
    contracts = load_contracts(contracts_dir or default_contracts_dir())
    kind = SourceKind(mes)
    batch_dir.mkdir(parents=True, exist_ok=True)
    entities: dict[str, dict[str, object]] = {}
    for table, frame in history.tables.items():
        contract = contracts[table]
        if kind is not SourceKind.FILE and contract.sources_of_kind(kind):
            parts = [(contract.sources_of_kind(kind)[0], frame)]
            if kind is SourceKind.PLEX:
                parts = _plex_parts(table, frame, contract)
            for mapping, part in parts:
                if kind is SourceKind.OPCENTER:
                    files = _opcenter(part, mapping, batch_dir, page_size)
                else:
                    files = [f"{mapping.entity}.json"]
                    _dump(batch_dir / files[0], {"data": _records(part, mapping)})
                entities[mapping.entity] = {"rows": len(part), "files": files}
            continue
        entity = contract.sources_of_kind(SourceKind.FILE)[0].entity
        name = f"{entity}.{file_format}"
        write_file_drop(frame, batch_dir / name)
        entities[entity] = {"rows": len(frame), "files": [name]}
    manifest = {
        "batch_id": batch_id or batch_dir.name,
        "source_kind": kind.value,
        "plant_id": history.config.plant_id,
        "created_by": CREATED_BY,
        "entities": entities,
    }
    (batch_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return batch_dir
