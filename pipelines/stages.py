"""The three stages of the data path for one table of one batch: land, anonymize, validate.

Plain functions over the zone store, the contracts and the platform database, so Dagster assets stay thin and
the same steps can be tested without Dagster.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from data_contracts.anonymization import Attestation, verify_attestation
from data_contracts.anonymization.anonymizer import anonymize_plain_table, anonymize_table_to_arrow
from data_contracts.contract import Contract, SourceKind
from data_contracts.landed import empty_landed
from data_contracts.validation import ValidationResult, validate
from mesops import database
from mesops.settings import Settings
from mesops.tables import AttestationRecord, IngestBatch, TableLoad
from pipelines.adapters.batch import BatchRef, read_batch_tables
from pipelines.zones import ZoneStore, to_arrow, to_frame

ROSTER_TABLE = "employees"


class StageError(RuntimeError):
    """A stage cannot run on this table and batch; the message says which and why."""


@dataclass(frozen=True)
class LandedSummary:
    """What one table of one batch brought into the landing zone."""

    table: str
    batch_id: str
    rows: int
    rows_with_issues: int
    sources: list[str]


def register_batch(settings: Settings, batch: BatchRef) -> None:
    """Record a complete landing batch in the platform database (once)."""
    manifest_sha = hashlib.sha256((batch.path / "_manifest.json").read_bytes()).hexdigest()
    with database.session_scope(settings.resolved_database_url) as session:
        if session.get(IngestBatch, batch.batch_id) is None:
            session.add(
                IngestBatch(
                    batch_id=batch.batch_id,
                    source_kind=str(batch.kind),
                    path=str(batch.path),
                    manifest_sha256=manifest_sha,
                    registered_at=datetime.now(UTC),
                )
            )


def land(store: ZoneStore, contract: Contract, batch: BatchRef) -> LandedSummary:
    """Read one table of a batch through its source adapter into the landing zone (text as received)."""
    # Arrow tables straight from the adapters: a plain CSV drop never becomes Python strings on its way here
    table = read_batch_tables(batch.path, {contract.name: contract}).get(contract.name)
    if table is None:
        table = to_arrow(empty_landed(contract.column_names))
    store.write_table(table, store.landed_path(contract.name, batch.batch_id))
    rows = table.num_rows
    # counted on the Arrow table just written: C loops instead of comparing a million Python strings
    issues = table.column("_issues")
    with_issues = 0
    if rows and not pa.types.is_null(issues.type):  # an all-null column has no issues to count
        with_issues = int(pc.sum(pc.not_equal(issues, "[]").fill_null(False)).as_py() or 0)
    distinct = pc.unique(table.column("_source")).drop_null().to_pylist() if rows else []
    sources = sorted({str(s).split("#")[0] for s in distinct})
    return LandedSummary(contract.name, batch.batch_id, rows, with_issues, sources)


def load_roster(store: ZoneStore) -> pd.DataFrame:
    """The plant roster: every landed employees table, newest batch last (landing zone only)."""
    roster = store.read_all("landed", ROSTER_TABLE)
    if roster.empty:
        return roster
    return roster.drop_duplicates(subset=["employee_no"], keep="last").reset_index(drop=True)


def anonymize(store: ZoneStore, settings: Settings, contract: Contract, batch_id: str) -> Attestation:
    """Replace identifiers by keyed pseudonyms and redact free text; write the table and its attestation."""
    if contract.landing_only:
        raise StageError(f"{contract.name} is landing-only personal data and is never anonymized onward")
    landed_table = store.read_table(store.landed_path(contract.name, batch_id))
    roster = load_roster(store)
    path = store.anonymized_path(contract.name, batch_id)
    options = {
        "key": settings.pseudonym_secret,
        "policy_version": settings.anonymization_policy_version,
        "batch_id": batch_id,
        "cache_dir": settings.cache_dir,
        "ner_model_path": settings.ner_model_path,
    }
    # a table without personal columns stays in Arrow: nothing in it needs to become Python objects
    plain = anonymize_plain_table(landed_table, contract, roster, **options)
    if plain is not None:
        attestation, table = plain
        store.write_table(table, path)
    else:
        anonymized, attestation, table = anonymize_table_to_arrow(
            to_frame(landed_table), contract, roster, source_table=landed_table, **options
        )
        # the table the attestation was hashed from; frame attrs are not in it, so such a frame is written as is
        if anonymized.attrs:
            store.write(anonymized, path)
        else:
            store.write_table(table, path)
    attestation.save(store.attestation_path(contract.name, batch_id))
    _record_attestation(settings, attestation, contract, batch_id)
    return attestation


def _record_attestation(
    settings: Settings, attestation: Attestation, contract: Contract, batch_id: str
) -> None:
    document = json.loads(attestation.model_dump_json())
    with database.session_scope(settings.resolved_database_url) as session:
        if session.get(AttestationRecord, attestation.attestation_id) is None:
            session.add(
                AttestationRecord(
                    attestation_id=attestation.attestation_id,
                    batch_id=batch_id,
                    table_name=contract.name,
                    contract_ref=contract.ref,
                    policy_version=attestation.policy_version,
                    content_sha256=attestation.content_sha256,
                    document=document,
                    created_at=datetime.now(UTC),
                )
            )


def load_attestation(store: ZoneStore, table: str, batch_id: str) -> Attestation:
    """The attestation of one anonymized table; a table without one cannot be curated."""
    path = store.attestation_path(table, batch_id)
    if not path.exists():
        raise StageError(
            f"{table} batch {batch_id}: no anonymization attestation at {path}; it cannot be curated"
        )
    return Attestation.load(path)


def reference_values(store: ZoneStore, contract: Contract) -> dict[str, set[str]]:
    """Known values for each foreign key of the contract: every id the MES sent for the referenced table.

    Taken from the anonymized zone (all batches), not the curated one: a machine whose master row was
    quarantined for a bad attribute is still a machine the MES knows, and its readings are not orphans.
    """
    references: dict[str, set[str]] = {}
    for column in contract.columns:
        if column.references is None:
            continue
        table, key = column.references.split(".")
        known = store.read_all("anonymized", table)
        references[column.references] = set(known[key].dropna().astype(str)) if key in known else set()
    return references


def timestamp_format_for(contract: Contract) -> str | None:
    """The non-ISO timestamp format of the contract's file source, if it declares one."""
    formats = {m.timestamp_format for m in contract.sources_of_kind(SourceKind.FILE) if m.timestamp_format}
    return formats.pop() if len(formats) == 1 else None


def validate_table(
    store: ZoneStore, settings: Settings, contract: Contract, batch_id: str, run_id: str
) -> ValidationResult:
    """Split an anonymized, attested table into curated rows and quarantined rows with reasons."""
    anonymized_path = store.anonymized_path(contract.name, batch_id)
    table = store.read_table(anonymized_path)
    anonymized = to_frame(table)
    attestation = load_attestation(store, contract.name, batch_id)
    verify_attestation(anonymized, attestation, table)  # hashed from the Arrow table: no second conversion
    result = validate(
        anonymized,
        contract,
        references=reference_values(store, contract),
        timestamp_format=timestamp_format_for(contract),
        source_table=table,
    )
    curated_sha = store.write(result.valid, store.curated_path(contract.name, batch_id))
    store.write(result.quarantined, store.quarantine_path(contract.name, batch_id))
    with database.session_scope(settings.resolved_database_url) as session:
        session.add(
            TableLoad(
                batch_id=batch_id,
                table_name=contract.name,
                contract_ref=contract.ref,
                landed=result.landed,
                valid=result.valid_count,
                quarantined=result.quarantined_count,
                reasons=reason_counts(result),
                attestation_id=attestation.attestation_id,
                curated_sha256=curated_sha,
                run_id=run_id,
                created_at=datetime.now(UTC),
            )
        )
    return result


def reason_counts(result: ValidationResult) -> dict[str, int]:
    """Quarantined rows per 'column rule' (e.g. 'torque_nm between[0, 150]'; '(row) <rule>' for row rules)."""
    return {
        f"{column} {rule}": rows
        for column, rules in result.summary()["by_column_rule"].items()
        for rule, rows in rules.items()
    }


def curated_paths(store: ZoneStore, table: str) -> list[Path]:
    """The curated Parquet files of a table, one per batch."""
    return store.batch_files("curated", table)
