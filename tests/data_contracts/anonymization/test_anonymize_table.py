"""anonymize_table end to end on landed frames: pseudonyms, redaction, attestation, refusals."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from data_contracts.anonymization import (
    AnonymizationError,
    Attestation,
    AttestationMismatchError,
    Roster,
    anonymize_table,
    verify_attestation,
)
from data_contracts.contract import Contract, load_contracts
from data_contracts.landed import ISSUES, LANDING_ROW, SOURCE
from tests.data_contracts.anonymization import ROSTER_ROWS, ground_truth, roster_frame

KEY = b"table-test-key-0123456789abcdef"
OTHER_KEY = b"another-key-fedcba9876543210"
CONTRACTS = load_contracts(Path(__file__).resolve().parents[3] / "data_contracts" / "contracts")
WHEN = datetime(2025, 3, 1, 6, 0, tzinfo=UTC)
AUTHORS = [
    ("Anna Novák", "BDG-00417"),
    ("NOVÁK, ANNA", "BDG-00417"),
    ("Guest Writer", None),
    (None, "E-10031"),
]


def _landed(rows: list[dict[str, object]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame[LANDING_ROW] = range(len(frame))
    frame[SOURCE] = "file:shift_notes.csv"
    frame[ISSUES] = "[]"
    return frame


@pytest.fixture(scope="module")
def notes() -> pd.DataFrame:
    rows = []
    for i, (text, _) in enumerate(ground_truth()):
        author, badge = AUTHORS[i % len(AUTHORS)]
        rows.append(
            {"note_id": f"SN-{i:06d}", "line_id": "L2", "shift": "A", "shift_date": "2025-03-01",
             "written_at": "2025-03-01T13:40:00", "author_name": author, "author_badge": badge, "text": text}
        )  # fmt: skip
    rows[3]["text"] = None
    frame = _landed(rows)
    frame.loc[0, ISSUES] = json.dumps(
        [
            {"column": "author_badge", "rule": "pattern", "observed": "BDG-00417"},
            {
                "column": "Remarks2",
                "rule": "unknown field",
                "observed": "ring Kwame Mensah on +44 7700 900123",
            },
            {"column": "line_id", "rule": "pattern", "observed": "Line-2x"},
        ]
    )
    return frame


def _run(frame: pd.DataFrame, tmp: Path, key: bytes = KEY, table: str = "shift_notes"):
    return anonymize_table(
        frame, CONTRACTS[table], roster_frame(), key=key, policy_version="1.0.0", batch_id="b-0001",
        cache_dir=tmp / "cache", created_at=WHEN,
    )  # fmt: skip


@pytest.fixture(scope="module")
def result(notes: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Attestation]:
    return _run(notes, tmp_path_factory.mktemp("run"))


def _planted_values() -> list[str]:
    values = {v for row in ROSTER_ROWS for v in row if v}
    values |= {f"{r[2]} {r[3]}" for r in ROSTER_ROWS} | {"Guest Writer"}
    values |= {text[s:e] for text, spans in ground_truth() for s, e, f in spans if f != "non_personal"}
    return sorted(values)


def test_same_rows_and_bookkeeping(notes: pd.DataFrame, result) -> None:
    out, _ = result
    assert list(out.columns) == list(notes.columns)
    assert out[LANDING_ROW].tolist() == notes[LANDING_ROW].tolist()
    assert out[SOURCE].tolist() == notes[SOURCE].tolist()
    assert out["note_id"].tolist() == notes["note_id"].tolist()


def test_one_person_one_pseudonym_in_every_column_and_form(result) -> None:
    out, _ = result
    anna = Roster.from_frame(roster_frame(), KEY).person_by_id("E-10023")
    assert anna is not None
    assert (
        out.loc[0, "author_name"] == out.loc[1, "author_name"] == out.loc[0, "author_badge"] == anna.pseudonym
    )
    assert f"<PERSON:{anna.pseudonym}>" in out.loc[0, "text"]
    assert re.fullmatch(r"P-[0-9a-f]{12}", out.loc[2, "author_name"])  # off the roster: from the value
    assert (
        out.loc[2, "author_badge"] is None
        and out.loc[3, "author_name"] is None
        and out.loc[3, "text"] is None
    )


def test_no_planted_value_survives_anywhere(result) -> None:
    out, _ = result
    dump = out.to_csv(index=False)
    leaks = [v for v in _planted_values() if re.search(rf"(?<!\w){re.escape(v)}(?!\w)", dump, re.IGNORECASE)]
    assert leaks == []


def test_non_personal_tokens_survive(result) -> None:
    out, _ = result
    texts = out["text"].fillna("").tolist()
    for i, (text, spans) in enumerate(ground_truth()):
        if i == 3:
            continue
        for s, e, form in spans:
            if form == "non_personal":
                assert text[s:e] in texts[i]


def test_issues_quoting_personal_values_are_anonymized(result) -> None:
    out, attestation = result
    issues = json.loads(out.loc[0, ISSUES])
    assert re.fullmatch(r"P-[0-9a-f]{12}", issues[0]["observed"])
    assert issues[1]["observed"].startswith("ring <PERSON:P-") and "<PHONE>" in issues[1]["observed"]
    assert issues[2]["observed"] == "Line-2x"  # a non-personal column's value is kept
    assert {c.column for c in attestation.columns} == {"author_name", "author_badge", "text", ISSUES}


def test_pseudonyms_stable_for_the_key_and_different_for_another(
    notes: pd.DataFrame, result, tmp_path: Path
) -> None:
    out, attestation = result
    again, again_attestation = _run(notes, tmp_path)
    pd.testing.assert_frame_equal(again, out)
    assert again_attestation == attestation
    other, _ = _run(notes, tmp_path, key=OTHER_KEY)
    for column in ("author_name", "author_badge"):
        assert not set(other[column].dropna()) & set(out[column].dropna())


def test_the_key_never_appears(result, tmp_path: Path) -> None:
    out, attestation = result
    path = attestation.save(tmp_path / "att.json")
    for blob in (out.to_csv(index=False), path.read_text(), repr(attestation)):
        assert KEY.decode() not in blob and KEY.hex() not in blob


def test_attestation_content(notes: pd.DataFrame, result) -> None:
    _, attestation = result
    assert (attestation.table, attestation.contract, attestation.batch_id) == (
        "shift_notes",
        "shift_notes@1.0.0",
        "b-0001",
    )
    assert (
        attestation.policy_version == "1.0.0"
        and attestation.created_at == WHEN
        and attestation.rows == len(notes)
    )
    by_column = {c.column: c for c in attestation.columns}
    assert by_column["author_name"].method == "pseudonym" and by_column["text"].method == "presidio"
    assert by_column["author_name"].found == {"ROSTER_PERSON": 8, "OFF_ROSTER_VALUE": 3}
    text = by_column["text"]
    assert text.values == len(notes) - 1
    for entity in ("ROSTER_PERSON", "PERSON", "PHONE_NUMBER", "EMAIL_ADDRESS", "BADGE_ID", "EMPLOYEE_NO"):
        assert text.found[entity] >= 1 and text.replaced[entity] >= 1
    assert "RosterNameRecognizer@1.0.0" in attestation.recognizers
    assert re.fullmatch(r"[0-9a-f]{64}", attestation.attestation_id)


def test_attestation_verifies_and_survives_a_round_trip(result, tmp_path: Path) -> None:
    out, attestation = result
    verify_attestation(out, attestation)
    loaded = Attestation.load(attestation.save(tmp_path / "att.json"))
    assert loaded == attestation
    verify_attestation(out.copy(), loaded)


def test_tampered_frame_is_detected(result) -> None:
    out, attestation = result
    tampered = out.copy()
    tampered.loc[5, "text"] = "Anna Novák was here"
    with pytest.raises(AttestationMismatchError, match="content_sha256"):
        verify_attestation(tampered, attestation)
    with pytest.raises(AttestationMismatchError, match="rows"):
        verify_attestation(out.iloc[1:], attestation)


def test_edited_attestation_is_detected(result, tmp_path: Path) -> None:
    out, attestation = result
    edited = attestation.model_copy(update={"policy_version": "0.0.1"})
    with pytest.raises(AttestationMismatchError, match="attestation_id"):
        verify_attestation(out, edited)
    path = attestation.save(tmp_path / "att.json")
    path.write_text(path.read_text().replace('"b-0001"', '"b-0002"'))
    with pytest.raises(AttestationMismatchError, match="attestation_id"):
        Attestation.load(path)


def test_landing_only_table_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AnonymizationError, match=r"employees@1\.0\.0: landing_only"):
        _run(_landed(roster_frame().to_dict("records")), tmp_path, table="employees")


def test_frame_missing_a_contract_column_is_refused(notes: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(AnonymizationError, match="author_badge"):
        _run(notes.drop(columns=["author_badge"]), tmp_path)


def test_table_without_free_text(tmp_path: Path) -> None:
    contract: Contract = CONTRACTS["operations"]
    row = dict.fromkeys(contract.column_names, "x")
    row["operator_id"] = "E-10023"
    out, attestation = anonymize_table(
        _landed([row]), contract, roster_frame(), key=KEY, policy_version="1.0.0", batch_id="b-1",
        cache_dir=tmp_path / "cache", created_at=WHEN,
    )  # fmt: skip
    assert out.loc[0, "operator_id"] == Roster.from_frame(roster_frame(), KEY).pseudonymize("E-10023", KEY)
    assert [c.method for c in attestation.columns if c.column == "operator_id"] == ["pseudonym"]
    verify_attestation(out, attestation)
