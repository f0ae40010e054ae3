"""Plex-style REST extracts: one ``<Resource>.json`` per resource, ``{"data": [...]}`` or a bare JSON array."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from data_contracts.contract import Contract, SourceKind
from pipelines.adapters.errors import SourceError
from pipelines.adapters.records import LandedPart, combine_parts, load_json_file, records_to_landed


def read_plex_file(path: Path) -> list[Any]:
    """The records of one Plex resource file."""
    body = load_json_file(path)
    location = f"{path.parent.name}/{path.name}"
    if isinstance(body, list):
        return body
    if isinstance(body, dict) and "data" in body:
        records = body["data"]
        if not isinstance(records, list):
            raise SourceError(
                location, f"'data' must be an array, got {type(records).__name__}", field="data"
            )
        return records
    raise SourceError(location, 'a Plex resource file is {"data": [...]} or a JSON array')


def iter_plex_parts(batch_dir: Path, contracts: Mapping[str, Contract]) -> Iterator[LandedPart]:
    """One landed part per plex mapping whose resource file is in the batch, in each contract's mapping order."""
    for contract in contracts.values():
        for name, mapping in contract.sources.items():
            path = batch_dir / f"{mapping.entity}.json"
            if mapping.kind != SourceKind.PLEX or not path.is_file():
                continue
            label = f"{name}:{batch_dir.name}/{path.name}"
            frame = records_to_landed(read_plex_file(path), contract, mapping, label)
            yield LandedPart(contract.name, name, mapping.entity, (path.name,), frame)


def read_plex(batch_dir: Path, contracts: Mapping[str, Contract]) -> dict[str, pd.DataFrame]:
    """Landed frames by table; a table fed by several resources (machine_events) gets them one after another."""
    return combine_parts(iter_plex_parts(batch_dir, contracts))
