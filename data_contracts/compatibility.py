"""Contract versioning: which changes break consumers, whether a version bump matches the change, releases.

A released contract version is frozen: ``data_contracts/released/<name>/<version>.yaml`` holds a byte copy of
every version ever released. A new version must be bumped (any content change) and bumped by a MAJOR step when
it breaks consumers of the curated table (see :func:`breaking_changes`). Narrowing a rule (a tighter range, a
smaller allowed set, a new pattern) and adding a nullable column are not breaking: rows consumers already
handle stay valid.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from data_contracts.contract import SEMVER, Column, Contract, ContractError, PersonalData, load_contract

RELEASED_DIR = Path(__file__).resolve().parent / "released"


def version_key(version: str) -> tuple[int, int, int]:
    """'1.10.0' -> (1, 10, 0), so versions sort numerically."""
    match = SEMVER.match(version)
    if match is None:
        raise ValueError(f"version {version!r} is not MAJOR.MINOR.PATCH")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def column_breaks(old: Column, new: Column) -> list[str]:
    """Consumer-breaking differences between two versions of one column."""
    name = old.name
    found: list[str] = []
    if old.type != new.type:
        found.append(f"column {name}: type changed {old.type.value} -> {new.type.value}")
    if not old.nullable and new.nullable:
        found.append(f"column {name}: nullable false -> true")
    if old.allowed is not None and (new.allowed is None or set(new.allowed) - set(old.allowed)):
        added = "any value" if new.allowed is None else sorted(set(new.allowed) - set(old.allowed))
        found.append(f"column {name}: allowed set widened (now allows {added})")
    if old.min is not None and (new.min is None or new.min < old.min):
        found.append(f"column {name}: min widened {old.min} -> {new.min}")
    if old.max is not None and (new.max is None or new.max > old.max):
        found.append(f"column {name}: max widened {old.max} -> {new.max}")
    if old.pattern is not None and new.pattern != old.pattern:
        found.append(f"column {name}: pattern changed {old.pattern!r} -> {new.pattern!r}")
    if old.references is not None and new.references != old.references:
        found.append(f"column {name}: references changed {old.references} -> {new.references}")
    if old.unique and not new.unique:
        found.append(f"column {name}: unique constraint dropped")
    if old.personal != PersonalData.NONE and new.personal == PersonalData.NONE:
        found.append(f"column {name}: personal classification lowered {old.personal.value} -> none")
    return found


def breaking_changes(old: Contract, new: Contract) -> list[str]:
    """What in ``new`` breaks consumers of ``old``'s curated table; empty when the change is compatible.

    Breaking: a column removed or renamed (a rename is a removal plus an addition), a new non-nullable column
    (older extracts lack it, so all their rows would be quarantined), a type change, nullable false -> true,
    a widened allowed set or min/max, a changed or removed pattern or reference, a changed primary key or
    event time, a dropped unique constraint, a personal classification lowered to none, a row rule removed
    or changed.
    """
    found: list[str] = []
    new_columns = {c.name: c for c in new.columns}
    old_names = set(old.column_names)
    for column in old.columns:
        if column.name not in new_columns:
            found.append(f"column {column.name}: removed or renamed")
        else:
            found.extend(column_breaks(column, new_columns[column.name]))
    for column in new.columns:
        if column.name not in old_names and not column.nullable:
            found.append(f"column {column.name}: added as non-nullable")
    if list(old.primary_key) != list(new.primary_key):
        found.append(f"primary key changed {old.primary_key} -> {new.primary_key}")
    if old.event_time != new.event_time:
        found.append(f"event_time changed {old.event_time} -> {new.event_time}")
    new_rules = {r.name: r.expression for r in new.rules}
    for rule in old.rules:
        if rule.name not in new_rules:
            found.append(f"rule {rule.name}: removed")
        elif new_rules[rule.name] != rule.expression:
            found.append(
                f"rule {rule.name}: expression changed {rule.expression!r} -> {new_rules[rule.name]!r}"
            )
    return found


def content_changed(old: Contract, new: Contract) -> bool:
    """True when anything but the version differs."""
    return old.model_dump(exclude={"version"}) != new.model_dump(exclude={"version"})


def check_version_bump(old: Contract, new: Contract) -> list[str]:
    """Problems with ``new``'s version given ``old``: not bumped though changed, or breaking without a major."""
    if old.name != new.name:
        return [f"{new.name}: compared with a contract of another table ({old.name})"]
    problems: list[str] = []
    old_version, new_version = version_key(old.version), version_key(new.version)
    if new_version < old_version:
        problems.append(f"{new.name}: version went backwards {old.version} -> {new.version}")
    elif content_changed(old, new) and new_version == old_version:
        problems.append(f"{new.name}: content changed but version {new.version} was not bumped")
    breaks = breaking_changes(old, new)
    if breaks and new_version[0] <= old_version[0]:
        problems.append(
            f"{new.name}: breaking change without a major bump ({old.version} -> {new.version}): "
            + "; ".join(breaks)
        )
    return problems


def released_versions(name: str, released_dir: Path = RELEASED_DIR) -> list[Contract]:
    """Every released version of a table's contract, oldest first."""
    folder = released_dir / name
    contracts = []
    for path in sorted(folder.glob("*.yaml")):
        contract = load_contract(path)
        if contract.name != name or f"{contract.version}.yaml" != path.name:
            raise ContractError(f"{path}: holds {contract.ref}; a snapshot is released/<name>/<version>.yaml")
        contracts.append(contract)
    return sorted(contracts, key=lambda c: version_key(c.version))


def newest_released(name: str, released_dir: Path = RELEASED_DIR) -> Contract | None:
    """The newest released version of a table's contract, or None if it was never released."""
    versions = released_versions(name, released_dir)
    return versions[-1] if versions else None


def release_contract(contract_path: Path, released_dir: Path = RELEASED_DIR) -> Path:
    """Copy a contract into ``released_dir/<name>/<version>.yaml`` after checking its version bump.

    Releasing the same version again with identical content is a no-op; with different content, or with a
    bump that does not match the change against the newest release, it raises ContractError.
    """
    contract = load_contract(contract_path)
    target = released_dir / contract.name / f"{contract.version}.yaml"
    if target.exists():
        if load_contract(target) != contract:
            raise ContractError(
                f"{contract_path.name}: {contract.ref} is already released with other content; bump the version"
            )
        return target
    newest = newest_released(contract.name, released_dir)
    if newest is not None:
        problems = check_version_bump(newest, contract)
        if problems:
            raise ContractError(f"{contract_path.name}: version: " + "; ".join(problems))
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(contract_path, target)
    return target
