"""Every shipped contract (and released snapshot) loads; broken files name the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_contracts.compatibility import RELEASED_DIR
from data_contracts.contract import ContractError, load_contract, load_contracts

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "data_contracts" / "contracts"
SHIPPED = sorted(CONTRACTS_DIR.glob("*.yaml"))

GOOD = """\
name: gadgets
version: 1.0.0
description: test
primary_key: [gadget_id]
columns:
  - {name: gadget_id, type: string, description: id}
sources:
  file: {kind: file, entity: gadgets, fields: {id: gadget_id}}
"""


def test_contracts_are_shipped():
    assert len(SHIPPED) >= 10


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_contract_loads_and_is_named_after_its_file(path: Path):
    contract = load_contract(path)
    assert contract.name == path.stem
    assert contract.columns


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_source_mappings_name_only_contract_columns(path: Path):
    contract = load_contract(path)
    for mapping in contract.sources.values():
        assert set(mapping.fields.values()) <= set(contract.column_names), mapping.entity


def test_folder_loads_all_contracts_by_table_name():
    assert sorted(load_contracts(CONTRACTS_DIR)) == sorted(p.stem for p in SHIPPED)


def test_released_snapshots_load():
    snapshots = sorted(RELEASED_DIR.glob("*/*.yaml"))
    assert snapshots
    for path in snapshots:
        contract = load_contract(path)
        assert (contract.name, contract.version) == (path.parent.name, path.stem)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (GOOD.replace("type: string", "type: decimal"), "columns.0.type"),
        (GOOD.replace("version: 1.0.0", "version: one"), "version"),
        (GOOD.replace("primary_key: [gadget_id]", "primary_key: [nope]"), "primary key column 'nope'"),
        (
            GOOD.replace("{id: gadget_id}", "{id: gadget_idx}"),
            "field 'id' maps to unknown column 'gadget_idx'",
        ),
        (GOOD.replace("description: test\n", ""), "description"),
        (GOOD + "colour: red\n", "colour"),
        (GOOD.replace("columns:", "columns: [\n"), "not valid YAML"),
    ],
)
def test_broken_contract_names_the_file_and_field(tmp_path: Path, text: str, fragment: str):
    path = tmp_path / "gadgets.yaml"
    path.write_text(text)
    with pytest.raises(ContractError) as caught:
        load_contract(path)
    assert str(caught.value).startswith("gadgets.yaml: ")
    assert fragment in str(caught.value)


def test_good_contract_text_loads(tmp_path: Path):
    path = tmp_path / "gadgets.yaml"
    path.write_text(GOOD)
    assert load_contract(path).ref == "gadgets@1.0.0"
