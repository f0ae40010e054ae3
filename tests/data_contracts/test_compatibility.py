"""Contract versioning: breaking-change rules, version bumps, releases, and the shipped contracts vs released."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from data_contracts.compatibility import (
    RELEASED_DIR,
    breaking_changes,
    check_version_bump,
    newest_released,
    release_contract,
    released_versions,
)
from data_contracts.contract import Column, Contract, ContractError, RowRule, load_contracts

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "data_contracts" / "contracts"

BASE = Contract(
    name="parts",
    version="1.2.0",
    description="Synthetic contract for versioning tests.",
    primary_key=["part_id"],
    event_time="made_at",
    columns=[
        Column(name="part_id", type="string", description="id", unique=True, pattern=r"^P-\d+$"),
        Column(name="kind", type="string", description="kind", allowed=["a", "b"]),
        Column(name="qty", type="integer", description="qty", min=0, max=100),
        Column(name="machine_id", type="string", description="m", references="machines.machine_id"),
        Column(name="made_at", type="timestamp", description="t"),
        Column(name="made_by", type="string", description="who", personal="identifier"),
        Column(name="note", type="string", description="note", nullable=True, personal="free_text"),
    ],
    rules=[RowRule(name="positive", expression="qty >= 0", description="d")],
)


def changed(contract: Contract = BASE, **update: object) -> Contract:
    """A validated copy (model_copy alone would skip validation and keep plain strings for enums)."""
    return Contract.model_validate(contract.model_dump() | update)


def with_column(column: str, **changes: object) -> Contract:
    return changed(
        columns=[c.model_dump() | changes if c.name == column else c.model_dump() for c in BASE.columns]
    )


def without_column(name: str) -> Contract:
    return changed(columns=[c.model_dump() for c in BASE.columns if c.name != name])


def plus_column(column: Column) -> Contract:
    return changed(columns=[*(c.model_dump() for c in BASE.columns), column.model_dump()])


RENAMED = changed(
    columns=[c.model_dump() | ({"name": "count"} if c.name == "qty" else {}) for c in BASE.columns]
)


@pytest.mark.parametrize(
    ("new", "message"),
    [
        (without_column("note"), "column note: removed or renamed"),
        (RENAMED, "column qty: removed or renamed"),
        (with_column("qty", type="float"), "column qty: type changed integer -> float"),
        (with_column("kind", nullable=True), "column kind: nullable false -> true"),
        (with_column("kind", allowed=["a", "b", "c"]), "column kind: allowed set widened"),
        (with_column("kind", allowed=None), "column kind: allowed set widened"),
        (with_column("qty", min=-1), "column qty: min widened"),
        (with_column("qty", max=None), "column qty: max widened"),
        (with_column("part_id", pattern=r"^P-\w+$"), "column part_id: pattern changed"),
        (with_column("part_id", pattern=None), "column part_id: pattern changed"),
        (with_column("machine_id", references=None), "column machine_id: references changed"),
        (with_column("part_id", unique=False), "column part_id: unique constraint dropped"),
        (with_column("made_by", personal="none"), "column made_by: personal classification lowered"),
        (with_column("note", personal="none"), "column note: personal classification lowered"),
        (changed(primary_key=["part_id", "made_at"]), "primary key changed"),
        (changed(event_time=None), "event_time changed"),
        (changed(rules=[]), "rule positive: removed"),
        (
            changed(rules=[RowRule(name="positive", expression="qty > 0", description="d").model_dump()]),
            "rule positive: expression changed",
        ),
        (
            plus_column(Column(name="line_id", type="string", description="l")),
            "column line_id: added as non-nullable",
        ),
    ],
)
def test_each_breaking_kind_is_caught(new, message):
    found = breaking_changes(BASE, new)
    assert any(message in line for line in found), found
    problems = check_version_bump(BASE, new.model_copy(update={"version": "1.3.0"}))
    assert any("breaking change without a major bump" in p for p in problems)
    assert check_version_bump(BASE, new.model_copy(update={"version": "2.0.0"})) == []


@pytest.mark.parametrize(
    "new",
    [
        plus_column(Column(name="line_id", type="string", description="l", nullable=True)),
        with_column("kind", allowed=["a"]),
        with_column("qty", min=1, max=50),
        with_column("kind", pattern=r"^[ab]$"),
        with_column("qty", description="quantity made"),
        with_column("made_by", personal="free_text"),
        changed(description="Reworded."),
    ],
)
def test_compatible_changes_are_not_breaking(new):
    assert breaking_changes(BASE, new) == []
    assert check_version_bump(BASE, new.model_copy(update={"version": "1.3.0"})) == []


def test_content_change_needs_a_version_bump():
    changed = plus_column(Column(name="line_id", type="string", description="l", nullable=True))
    assert check_version_bump(BASE, changed) == ["parts: content changed but version 1.2.0 was not bumped"]
    assert check_version_bump(BASE, BASE) == []
    assert check_version_bump(BASE, BASE.model_copy(update={"version": "1.10.0"})) == []


def test_version_cannot_go_backwards():
    problems = check_version_bump(BASE, BASE.model_copy(update={"version": "1.1.9"}))
    assert problems == ["parts: version went backwards 1.2.0 -> 1.1.9"]


def write(contract: Contract, folder: Path) -> Path:
    path = folder / f"{contract.name}.yaml"
    path.write_text(yaml.safe_dump(contract.model_dump(mode="json", exclude_defaults=True), sort_keys=False))
    return path


def test_release_contract_copies_and_enforces_the_bump(tmp_path: Path):
    released = tmp_path / "released"
    source = write(BASE, tmp_path)
    first = release_contract(source, released)
    assert first == released / "parts" / "1.2.0.yaml"
    assert first.read_bytes() == source.read_bytes()
    assert release_contract(source, released) == first  # same version, same content: no-op

    write(with_column("qty", max=None), tmp_path)
    with pytest.raises(ContractError, match="already released with other content"):
        release_contract(source, released)

    write(with_column("qty", max=None).model_copy(update={"version": "1.3.0"}), tmp_path)
    with pytest.raises(ContractError, match="breaking change without a major bump"):
        release_contract(source, released)

    write(with_column("qty", max=None).model_copy(update={"version": "2.0.0"}), tmp_path)
    release_contract(source, released)
    assert [c.version for c in released_versions("parts", released)] == ["1.2.0", "2.0.0"]
    assert newest_released("parts", released).version == "2.0.0"  # type: ignore[union-attr]


def test_misfiled_snapshot_is_an_error(tmp_path: Path):
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "9.9.9.yaml").write_bytes(write(BASE, tmp_path).read_bytes())
    with pytest.raises(ContractError, match=r"holds parts@1\.2\.0"):
        released_versions("parts", tmp_path)


@pytest.mark.parametrize("name", sorted(load_contracts(CONTRACTS_DIR)))
def test_shipped_contract_matches_its_newest_release(name: str):
    current = load_contracts(CONTRACTS_DIR)[name]
    newest = newest_released(name, RELEASED_DIR)
    assert newest is not None, f"{name} was never released: run release_contract on it"
    assert check_version_bump(newest, current) == []
