"""Anonymize one landed table: keyed pseudonyms for identifier columns, Presidio for free text, an attestation."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from data_contracts.anonymization.attestation import (
    Attestation,
    ColumnAttestation,
    Method,
    frame_content_hash,
    table_content_hash,
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
    # Each distinct issues text is rewritten once: most rows share "[]" or one schema-drift list.
    occurrences = values[values.notna()].astype(str).value_counts()
    rewritten, attestation = _rewrite_issue_texts(
        occurrences.items(),
        lambda raw: int(np.flatnonzero(values.astype(str).to_numpy() == raw)[0]),
        contract,
        roster,
        key,
        engine,
    )
    out = values.astype(object).where(values.notna(), None)
    changed = out.isin(list(rewritten))
    out[changed] = out[changed].map(rewritten)
    return pd.Series(out, index=values.index, dtype="object", name=values.name), attestation


def _rewrite_issue_texts(
    occurrences: Iterable[tuple[str, int]],
    first_row: Callable[[str], int],
    contract: Contract,
    roster: Roster,
    key: bytes,
    engine: TextAnonymizer,
) -> tuple[dict[str, str], ColumnAttestation]:
    """The rewritten text of each distinct issues text (with its row count), and what was replaced in them."""
    identifiers = set(contract.personal_columns(PersonalData.IDENTIFIER))
    plain = set(contract.column_names) - identifiers - set(contract.personal_columns(PersonalData.FREE_TEXT))
    found: Counter[str] = Counter()
    replaced: Counter[str] = Counter()
    processed = 0
    rewritten: dict[str, str] = {}
    for raw, rows in occurrences:
        if raw.strip() in ("", "[]"):
            continue
        try:
            issues = json.loads(raw)
        except json.JSONDecodeError as err:
            raise AnonymizationError(
                f"{ISSUES} (row {first_row(raw)}): not a JSON list of violations: {err}"
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
    attestation = ColumnAttestation(
        column=ISSUES, method=Method.PRESIDIO, values=processed, found=found, replaced=replaced
    )
    return rewritten, attestation


def _arrow_issues(
    column: pa.ChunkedArray, contract: Contract, roster: Roster, key: bytes, engine: TextAnonymizer
) -> tuple[pa.Array, ColumnAttestation]:
    """:func:`_redact_issues` on the Arrow column: distinct texts counted and rewritten without Python rows."""
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    distinct = pc.value_counts(array.drop_null()) if not pa.types.is_null(array.type) else None
    if distinct is None or len(distinct) == 0:
        occurrences = pd.Series([], dtype="int64")
    else:
        # first-seen order then pandas' own sort by count: the order value_counts gives on the frame
        occurrences = pd.Series(
            distinct.field("counts").to_numpy(), index=distinct.field("values").to_pylist()
        ).sort_values(ascending=False)
    rewritten, attestation = _rewrite_issue_texts(
        occurrences.items(),
        lambda raw: int(pc.index(array, raw).as_py()),
        contract,
        roster,
        key,
        engine,
    )
    if not rewritten:
        return array, attestation
    keys = pa.array(list(rewritten), pa.string())
    where = pc.index_in(array, value_set=keys)
    replacement = pa.array(list(rewritten.values()), pa.string()).take(where)
    return pc.if_else(pc.is_null(where), array, replacement), attestation


def anonymize_plain_table(
    table: pa.Table,
    contract: Contract,
    roster: pd.DataFrame,
    *,
    key: bytes,
    policy_version: str,
    batch_id: str,
    cache_dir: Path,
    created_at: datetime | None = None,
    ner_model_path: Path | None = None,
) -> tuple[Attestation, pa.Table] | None:
    """:func:`anonymize_table_to_arrow` in Arrow alone for a contract without personal columns, else None.

    Such a table leaves as it landed except for the values quoted in ``_issues``, so nothing becomes Python
    objects: the attestation hashes the very table that is written, as the frame path would (same content,
    same hash). None (use the frame path) for a contract with personal columns or a table it cannot prove
    equal (no pandas metadata, frame attrs, columns other than text and integers).
    """
    _check_can_anonymize(contract, key, table.column_names)
    personal = [
        *contract.personal_columns(PersonalData.IDENTIFIER),
        *contract.personal_columns(PersonalData.FREE_TEXT),
    ]
    metadata = table.schema.metadata or {}
    if personal or b"pandas" not in metadata or b"PANDAS_ATTRS" in metadata:
        return None
    people = Roster.from_frame(roster, key)
    engine = get_text_anonymizer(people, key, cache_dir, ner_model_path)
    columns: list[ColumnAttestation] = []
    if ISSUES in table.column_names:
        issues, attested = _arrow_issues(table.column(ISSUES), contract, people, key, engine)
        columns.append(attested)
        position = table.column_names.index(ISSUES)
        if not issues.type.equals(table.schema.field(ISSUES).type):
            return None  # never expected: text stays text; the frame path handles anything else
        table = table.set_column(position, table.schema.field(ISSUES), issues)
    content = table_content_hash(table)
    if content is None:
        return None
    attestation = Attestation.build(
        table=contract.name,
        contract=contract.ref,
        batch_id=batch_id,
        policy_version=policy_version,
        created_at=created_at or datetime.now(UTC),
        rows=table.num_rows,
        columns=columns,
        content_sha256=content,
        recognizers=engine.recognizer_names,
    )
    return attestation, table


def _check_can_anonymize(contract: Contract, key: bytes, present: Iterable[str]) -> None:
    if contract.landing_only:
        raise AnonymizationError(
            f"{contract.ref}: landing_only - this table is personal data by nature and never leaves landing"
        )
    if not key:
        raise AnonymizationError("key: the pseudonym key is empty; pass Settings.pseudonym_secret")
    names = set(present)
    missing = [c for c in contract.column_names if c not in names]
    if missing:
        raise AnonymizationError(f"{contract.ref}: frame lacks contract column(s) {missing}")


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
    _check_can_anonymize(contract, key, frame.columns)
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
