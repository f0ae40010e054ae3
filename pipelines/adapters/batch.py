"""A landing batch folder as a whole: its manifest, the reader for its source kind, and the file drops beside.

Layout: ``<landing>/<kind>/<batch_id>/`` holding the extract files and ``_manifest.json``, which the writer puts
there last, so a folder without it is still being written and is never read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from data_contracts.contract import Contract, SourceKind, SourceMapping
from pipelines.adapters.errors import SourceError
from pipelines.adapters.files import find_file_drop, read_file_drop, read_file_drop_table
from pipelines.adapters.opcenter import iter_opcenter_parts
from pipelines.adapters.plex import iter_plex_parts
from pipelines.adapters.records import LandedPart, combine_parts, load_json_file
from pipelines.zones import to_arrow, to_frame

MANIFEST = "_manifest.json"


class ManifestEntity(BaseModel):
    """What the writer says it put in the batch for one entity set, resource or file."""

    model_config = ConfigDict(extra="allow", frozen=True)

    rows: int | None = Field(default=None, ge=0, description="Records written; checked against what is read.")
    files: list[str]


class Manifest(BaseModel):
    """The ``_manifest.json`` of a batch (unknown extra keys are kept, not rejected)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    batch_id: str
    source_kind: SourceKind
    plant_id: str | None = None
    created_by: str | None = None
    entities: dict[str, ManifestEntity]


@dataclass(frozen=True)
class BatchRef:
    """A complete batch found in the landing folder."""

    kind: SourceKind
    batch_id: str
    path: Path
    manifest: Manifest


def read_manifest(batch_dir: Path) -> Manifest:
    """The batch's manifest; a folder without one is not complete yet."""
    path = batch_dir / MANIFEST
    location = f"{batch_dir.name}/{MANIFEST}"
    if not path.is_file():
        raise SourceError(location, "no manifest: the batch is not complete")
    try:
        return Manifest.model_validate(load_json_file(path))
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        raise SourceError(location, first["msg"], field=field) from None


def list_batches(landing_dir: Path) -> list[BatchRef]:
    """Complete batches under ``<landing>/<kind>/<batch_id>/``, sorted by kind then batch id."""
    found: list[BatchRef] = []
    for kind in SourceKind:
        kind_dir = landing_dir / kind.value
        if not kind_dir.is_dir():
            continue
        for batch_dir in kind_dir.iterdir():
            if not (batch_dir / MANIFEST).is_file():
                continue  # still being written (or not a batch at all)
            manifest = read_manifest(batch_dir)
            _check_place(batch_dir, manifest, kind)
            found.append(BatchRef(kind, batch_dir.name, batch_dir, manifest))
    return sorted(found, key=lambda ref: (ref.kind.value, ref.batch_id))


def _check_place(batch_dir: Path, manifest: Manifest, kind: SourceKind) -> None:
    location = f"{batch_dir.name}/{MANIFEST}"
    if manifest.source_kind != kind:
        raise SourceError(
            location, f"says {manifest.source_kind.value} but lies under {kind.value}/", field="source_kind"
        )
    if manifest.batch_id != batch_dir.name:
        raise SourceError(
            location, f"says {manifest.batch_id!r} but the folder is named otherwise", field="batch_id"
        )


def read_batch(batch_dir: Path, contracts: Mapping[str, Contract]) -> dict[str, pd.DataFrame]:
    """Landed frames by canonical table for everything a complete batch carries (the roster included).

    The batch's own kind is read first (Opcenter pages or Plex resources); then ``<entity>.csv|.parquet`` drops
    for tables that kind did not deliver. Tables the batch does not carry have no key in the result.
    """
    manifest = read_manifest(batch_dir)
    _check_listed_files(batch_dir, manifest)
    parts = list(_vendor_parts(batch_dir, manifest.source_kind, contracts))
    parts += list(_file_drop_parts(batch_dir, contracts, carried={p.table: p for p in parts}))
    _check_row_counts(batch_dir, manifest, parts)
    return combine_parts(parts)


def read_batch_tables(batch_dir: Path, contracts: Mapping[str, Contract]) -> dict[str, pa.Table]:
    """:func:`read_batch`'s frames as the Arrow tables ``to_arrow`` makes of them, for writing the landed files.

    Same checks and same tables; a plain CSV drop goes from Arrow's reader to its landed table without ever
    becoming Python strings (the costly part of landing a large historian export).
    """
    manifest = read_manifest(batch_dir)
    _check_listed_files(batch_dir, manifest)
    parts: list[LandedPart | _ArrowPart] = list(_vendor_parts(batch_dir, manifest.source_kind, contracts))
    carried = {p.table: p for p in parts if isinstance(p, LandedPart)}
    for contract, name, mapping, path in _file_drops(batch_dir, contracts, carried):
        table = read_file_drop_table(path, contract, mapping)
        if table is None:
            parts.append(
                LandedPart(
                    contract.name, name, mapping.entity, (path.name,), read_file_drop(path, contract, mapping)
                )
            )
        else:
            parts.append(_ArrowPart(contract.name, name, mapping.entity, (path.name,), table))
    _check_row_counts(batch_dir, manifest, parts)
    per_table = Counter(p.table for p in parts)
    # a table read from one plain drop keeps its Arrow table; several parts are combined as frames
    tables = {p.table: p.arrow for p in parts if isinstance(p, _ArrowPart) and per_table[p.table] == 1}
    frames = combine_parts(
        p if isinstance(p, LandedPart) else p.as_part() for p in parts if p.table not in tables
    )
    return {name: tables[name] if name in tables else to_arrow(frames[name]) for name in per_table}


@dataclass(frozen=True)
class _ArrowPart:
    """A file drop's landed rows as the Arrow table (see :func:`read_batch_tables`)."""

    table: str
    mapping_name: str
    entity: str
    files: tuple[str, ...]
    arrow: pa.Table

    def as_part(self) -> LandedPart:
        return LandedPart(self.table, self.mapping_name, self.entity, self.files, to_frame(self.arrow))


def _part_rows(part: LandedPart | _ArrowPart) -> int:
    return part.arrow.num_rows if isinstance(part, _ArrowPart) else len(part.frame)


def _vendor_parts(
    batch_dir: Path, kind: SourceKind, contracts: Mapping[str, Contract]
) -> Iterator[LandedPart]:
    if kind == SourceKind.OPCENTER:
        yield from iter_opcenter_parts(batch_dir, contracts)
    elif kind == SourceKind.PLEX:
        yield from iter_plex_parts(batch_dir, contracts)


def _file_drop_parts(
    batch_dir: Path, contracts: Mapping[str, Contract], carried: Mapping[str, LandedPart]
) -> Iterator[LandedPart]:
    for contract, name, mapping, path in _file_drops(batch_dir, contracts, carried):
        yield LandedPart(
            contract.name, name, mapping.entity, (path.name,), read_file_drop(path, contract, mapping)
        )


def _file_drops(
    batch_dir: Path, contracts: Mapping[str, Contract], carried: Mapping[str, LandedPart]
) -> Iterator[tuple[Contract, str, SourceMapping, Path]]:
    """Each file drop the contracts map: (contract, mapping name, mapping, path); a second source is an error."""
    for contract in contracts.values():
        for name, mapping in contract.sources.items():
            if mapping.kind != SourceKind.FILE:
                continue
            path = find_file_drop(batch_dir, mapping.entity)
            if path is None:
                continue
            if contract.name in carried:
                other = carried[contract.name]
                raise SourceError(
                    f"{batch_dir.name}/{path.name}",
                    f"a second source for table {contract.name} beside {other.mapping_name} ({other.entity})",
                )
            yield contract, name, mapping, path


def _check_listed_files(batch_dir: Path, manifest: Manifest) -> None:
    root = batch_dir.resolve()
    for entity, entry in manifest.entities.items():
        for name in entry.files:
            path = (batch_dir / name).resolve()
            if not path.is_relative_to(root):
                raise SourceError(
                    f"{batch_dir.name}/{MANIFEST}", f"file {name!r} lies outside the batch", field=entity
                )
            if not path.is_file():
                raise SourceError(
                    f"{batch_dir.name}/{name}", f"listed in the manifest under {entity!r} but missing"
                )


def _check_row_counts(
    batch_dir: Path, manifest: Manifest, parts: list[LandedPart] | list[LandedPart | _ArrowPart]
) -> None:
    """Each part read must hold the rows the manifest announced for its entity (a truncated file shows here)."""
    for part in parts:
        names = {part.entity, *part.files}
        entry = next(((key, e) for key, e in manifest.entities.items() if key in names), None)
        if entry is None:
            continue  # the manifest need not list every file; the ones it lists must add up
        key, announced = entry
        if announced.rows is not None and announced.rows != _part_rows(part):
            raise SourceError(
                f"{batch_dir.name}/{MANIFEST}",
                f"announces {announced.rows} rows, the files hold {_part_rows(part)}",
                field=key,
            )
