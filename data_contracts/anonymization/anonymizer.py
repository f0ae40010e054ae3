"""Anonymize one landed table: keyed pseudonyms for identifier columns, Presidio for free text, an attestation."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from data_contracts.anonymization.attestation import (
    Attestation,
    ColumnAttestation,
    Method,
    frame_content_hash,
)
from data_contracts.anonymization.engine import AnonymizationError, TextAnonymizer, get_text_anonymizer
from data_contracts.anonymization.pseudonyms import Roster
from data_contracts.anonymization.recognizers import ROSTER_PERSON
from data_contracts.contract import Contract, PersonalData
from data_contracts.landed import ISSUES

OFF_ROSTER_VALUE = "OFF_ROSTER_VALUE"


def _is_null(value: object) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def pseudonymize_column(values: pd.Series, roster: Roster, key: bytes) -> tuple[pd.Series, ColumnAttestation]:
    """Replace every non-null value by its keyed pseudonym (the roster person's when it names one)."""
    found: Counter[str] = Counter()
    cache: dict[str, str] = {}
    out: list[object] = []
    for value in values:
        if _is_null(value):
            out.append(None)
            continue
        text = str(value)
        if text not in cache:
            cache[text] = roster.pseudonymize(text, key)
        found[ROSTER_PERSON if roster.resolve(text) else OFF_ROSTER_VALUE] += 1
        out.append(cache[text])
    attestation = ColumnAttestation(
        column=str(values.name),
        method=Method.PSEUDONYM,
        values=sum(found.values()),
        found=found,
        replaced=found,
    )
    return pd.Series(out, index=values.index, dtype="object", name=values.name), attestation


def redact_column(values: pd.Series, engine: TextAnonymizer) -> tuple[pd.Series, ColumnAttestation]:
    """Run every non-null text through Presidio (each distinct text once)."""
    texts = [str(v) for v in values if not _is_null(v)]
    results = iter(engine.anonymize(texts))
    found: Counter[str] = Counter()
    replaced: Counter[str] = Counter()
    out: list[object] = []
    for value in values:
        if _is_null(value):
            out.append(None)
            continue
        result = next(results)
        found.update(result.found)
        replaced.update(result.replaced)
        out.append(result.text)
    attestation = ColumnAttestation(
        column=str(values.name), method=Method.PRESIDIO, values=len(texts), found=found, replaced=replaced
    )
    return pd.Series(out, index=values.index, dtype="object", name=values.name), attestation


def _redact_issues(
    values: pd.Series, contract: Contract, roster: Roster, key: bytes, engine: TextAnonymizer
) -> tuple[pd.Series, ColumnAttestation]:
    """Landing issues quote observed values: pseudonymize those of identifier columns, redact the rest.

    Values of known non-personal columns are kept; values of free-text columns and of fields the contract does
    not know (which may hold anything) go through Presidio.
    """
    identifiers = set(contract.personal_columns(PersonalData.IDENTIFIER))
    plain = set(contract.column_names) - identifiers - set(contract.personal_columns(PersonalData.FREE_TEXT))
    found: Counter[str] = Counter()
    replaced: Counter[str] = Counter()
    processed = 0
    rewritten: dict[str, str] = {}
    # Each distinct issues text is rewritten once: most rows share "[]" or one schema-drift list.
    occurrences = values[values.notna()].astype(str).value_counts()
    for raw, rows in occurrences.items():
        if raw.strip() in ("", "[]"):
            continue
        try:
            issues = json.loads(raw)
        except json.JSONDecodeError as err:
            position = int(np.flatnonzero(values.astype(str).to_numpy() == raw)[0])
            raise AnonymizationError(
                f"{ISSUES} (row {position}): not a JSON list of violations: {err}"
            ) from None
        for issue in issues:
            observed, column = issue.get("observed"), issue.get("column")
            if observed is None or column in plain:
                continue
            processed += rows
            if column in identifiers:
                issue["observed"] = roster.pseudonymize(str(observed), key)
                kind = ROSTER_PERSON if roster.resolve(str(observed)) else OFF_ROSTER_VALUE
                found[kind] += rows
                replaced[kind] += rows
            else:
                (result,) = engine.anonymize([str(observed)])
                issue["observed"] = result.text
                found.update({k: n * rows for k, n in result.found.items()})
                replaced.update({k: n * rows for k, n in result.replaced.items()})
        rewritten[raw] = json.dumps(issues)
    out = values.astype(object).where(values.notna(), None)
    changed = out.isin(list(rewritten))
    out[changed] = out[changed].map(rewritten)
    attestation = ColumnAttestation(
        column=ISSUES, method=Method.PRESIDIO, values=processed, found=found, replaced=replaced
    )
    return pd.Series(out, index=values.index, dtype="object", name=values.name), attestation


def _output_table(out: pd.DataFrame, changed: list[str], source: pa.Table | None) -> pa.Table:
    """``pa.Table.from_pandas(out)``, converting only the ``changed`` columns when the rest are ``source``'s."""
    names = [str(c) for c in out.columns]
    if (
        source is None
        or out.attrs
        or source.column_names != names
        or source.num_rows != len(out)
        or b"pandas" not in (source.schema.metadata or {})
    ):
        return pa.Table.from_pandas(out, preserve_index=False)
    fresh = pa.Table.from_pandas(out[changed], preserve_index=False)
    pick = [fresh if name in changed else source for name in names]
    metadata = json.loads(source.schema.metadata[b"pandas"])
    fresh_columns = {c["name"]: c for c in json.loads(fresh.schema.metadata[b"pandas"])["columns"]}
    metadata["columns"] = [fresh_columns.get(c["name"], c) for c in metadata["columns"]]
    schema = pa.schema(
        [t.schema.field(name) for t, name in zip(pick, names, strict=True)],
        metadata={**source.schema.metadata, b"pandas": json.dumps(metadata).encode()},
    )
    return pa.Table.from_arrays([t.column(name) for t, name in zip(pick, names, strict=True)], schema=schema)


def anonymize_table(
    frame: pd.DataFrame,
    contract: Contract,
    roster: pd.DataFrame,
    *,
    key: bytes,
    policy_version: str,
    batch_id: str,
    cache_dir: Path,
    created_at: datetime | None = None,
    ner_model_path: Path | None = None,
) -> tuple[pd.DataFrame, Attestation]:
    """Anonymize a landed table for leaving the landing zone and attest what was done.

    Same as :func:`anonymize_table_to_arrow` without the Arrow form of the result.
    """
    out, attestation, _ = anonymize_table_to_arrow(
        frame,
        contract,
        roster,
        key=key,
        policy_version=policy_version,
        batch_id=batch_id,
        cache_dir=cache_dir,
        created_at=created_at,
        ner_model_path=ner_model_path,
    )
    return out, attestation


def anonymize_table_to_arrow(
    frame: pd.DataFrame,
    contract: Contract,
    roster: pd.DataFrame,
    *,
    key: bytes,
    policy_version: str,
    batch_id: str,
    cache_dir: Path,
    created_at: datetime | None = None,
    ner_model_path: Path | None = None,
    source_table: pa.Table | None = None,
) -> tuple[pd.DataFrame, Attestation, pa.Table]:
    """Anonymize a landed table and attest it; also the result as the Arrow table to write (hashed from it).

    The anonymized frame is converted to Arrow once: the content hash reads that table and the zone writes it,
    instead of each converting every Python string again. ``source_table``, the Arrow table ``frame`` was read
    from, lets the columns anonymization leaves untouched be taken from it as they are.

    Args:
        frame: the landed frame (contract columns as text/None plus the bookkeeping columns).
        contract: the table's contract; its ``personal`` markings decide what happens to each column.
        roster: the landed ``employees`` frame, to resolve people and find them in free text.
        key: the pseudonym secret (``Settings.pseudonym_secret``); used in memory, never stored.
        policy_version: ``Settings.anonymization_policy_version``, recorded in the attestation.
        batch_id: the landing batch the frame came from.
        cache_dir: folder for the blank spaCy pipeline (e.g. ``<MESOPS_HOME>/cache``).
        created_at: attestation time; default now (UTC).
        ner_model_path: optional spaCy NER model folder (``Settings.ner_model_path``).
    """
    if contract.landing_only:
        raise AnonymizationError(
            f"{contract.ref}: landing_only - this table is personal data by nature and never leaves landing"
        )
    if not key:
        raise AnonymizationError("key: the pseudonym key is empty; pass Settings.pseudonym_secret")
    missing = [c for c in contract.column_names if c not in frame.columns]
    if missing:
        raise AnonymizationError(f"{contract.ref}: frame lacks contract column(s) {missing}")
    people = Roster.from_frame(roster, key)
    out = frame.copy()
    columns: list[ColumnAttestation] = []
    for column in contract.personal_columns(PersonalData.IDENTIFIER):
        out[column], attested = pseudonymize_column(frame[column], people, key)
        columns.append(attested)
    free_text = contract.personal_columns(PersonalData.FREE_TEXT)
    engine = get_text_anonymizer(people, key, cache_dir, ner_model_path)
    for column in free_text:
        out[column], attested = redact_column(frame[column], engine)
        columns.append(attested)
    if ISSUES in frame.columns:
        out[ISSUES], attested = _redact_issues(frame[ISSUES], contract, people, key, engine)
        columns.append(attested)
    changed = [*contract.personal_columns(PersonalData.IDENTIFIER), *free_text]
    table = _output_table(out, [*changed, ISSUES] if ISSUES in frame.columns else changed, source_table)
    attestation = Attestation.build(
        table=contract.name,
        contract=contract.ref,
        batch_id=batch_id,
        policy_version=policy_version,
        created_at=created_at or datetime.now(UTC),
        rows=len(out),
        columns=columns,
        content_sha256=frame_content_hash(out, table),
        recognizers=engine.recognizer_names,
    )
    return out, attestation, table
