"""Bring extracts into the landing zone as complete batches: dropped files, or pulled from an OData endpoint."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from data_contracts.contract import Contract, SourceKind
from pipelines.adapters.errors import SourceError
from pipelines.adapters.opcenter import ODataClient, write_odata_pages

MANIFEST = "_manifest.json"


def new_batch_id(kind: str, now: datetime | None = None) -> str:
    """A sortable, unique-enough id: <kind>-<UTC timestamp with microseconds>."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%f")
    return f"{kind}-{stamp}"


def write_manifest(
    batch_dir: Path, kind: str, batch_id: str, entities: Mapping[str, dict], **extra: str
) -> None:
    """Write _manifest.json last: its presence marks the batch complete for the sensor."""
    manifest = {"batch_id": batch_id, "source_kind": kind, "entities": dict(entities), **extra}
    (batch_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))


def land_files(paths: Iterable[Path], landing_dir: Path, contracts: Mapping[str, Contract]) -> Path:
    """Copy CSV/Parquet drops into a new file batch; each file's stem must be a contract's file entity."""
    entities = {m.entity for c in contracts.values() for m in c.sources_of_kind(SourceKind.FILE)}
    paths = list(paths)
    for path in paths:
        if not path.is_file():
            raise SourceError(f"{path}: no such file")
        if path.suffix not in (".csv", ".parquet"):
            raise SourceError(f"{path}: file drops must be .csv or .parquet")
        if path.stem not in entities:
            raise SourceError(
                f"{path.name}: no contract maps a file named {path.stem!r} (known: {', '.join(sorted(entities))})"
            )
    batch_id = new_batch_id("file")
    batch_dir = landing_dir / "file" / batch_id
    batch_dir.mkdir(parents=True)
    manifest = {}
    for path in paths:
        shutil.copyfile(path, batch_dir / path.name)
        manifest[path.stem] = {"files": [path.name]}
    write_manifest(batch_dir, "file", batch_id, manifest, created_by="mesops land")
    return batch_dir


def land_odata(
    client: ODataClient, landing_dir: Path, contracts: Mapping[str, Contract], page_rows: int
) -> Path:
    """Pull every mapped entity set from an Opcenter OData endpoint into a new batch, as OData page files."""
    batch_id = new_batch_id("opcenter")
    batch_dir = landing_dir / "opcenter" / batch_id
    batch_dir.mkdir(parents=True)
    manifest: dict[str, dict] = {}
    for entity_set in sorted(
        {m.entity for c in contracts.values() for m in c.sources_of_kind(SourceKind.OPCENTER)}
    ):
        records = list(client.iter_entity(entity_set, missing_ok=True))
        if not records:
            continue
        manifest[entity_set] = {
            "rows": len(records),
            "files": write_odata_pages(batch_dir, entity_set, records, page_rows),
        }
    write_manifest(batch_dir, "opcenter", batch_id, manifest, created_by="mesops land --odata-url")
    return batch_dir
