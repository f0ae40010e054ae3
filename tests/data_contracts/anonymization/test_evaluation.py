"""The evaluation's arithmetic on a fake detector, and planted entities in the simulator's shape."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from data_contracts.anonymization.evaluation import cases_from_planted, evaluate

TEXT = "Novák's crew on M-07, call Jan."


def _detector(spans: list[tuple[int, int]]):
    return lambda texts: [spans for _ in texts]


def test_recall_counts_fully_covered_spans_and_ignores_the_possessive() -> None:
    truth = [(TEXT, [(0, 7, "roster_possessive"), (27, 30, "roster_first_name"), (16, 20, "non_personal")])]
    report = evaluate(truth, _detector([(0, 5)]))
    assert report.forms["roster_possessive"].recall == 1.0
    assert report.forms["roster_first_name"].recall == 0.0
    assert report.missed == [("roster_first_name", "Jan")]
    assert report.token_over_redaction == 0.0


def test_partial_cover_is_a_miss_and_over_redaction_is_counted() -> None:
    truth = [(TEXT, [(27, 30, "roster_first_name"), (16, 20, "non_personal")])]
    report = evaluate(truth, _detector([(28, 30), (16, 18)]))
    assert report.forms["roster_first_name"].caught == 0
    assert report.token_over_redaction == 1.0
    assert report.over_redacted == ["M-07"]
    non_blank_outside = sum(1 for i, c in enumerate(TEXT) if not c.isspace() and not 27 <= i < 30)
    assert report.char_over_redaction == pytest.approx(2 / non_blank_outside)


@dataclass(frozen=True)
class Planted:
    table: str
    key: str
    column: str
    form: str
    value: str
    start: int
    end: int


def test_cases_from_planted_groups_by_text() -> None:
    planted = [
        Planted("shift_notes", "SN-1", "text", "roster_first_name", "Jan", 27, 30),
        Planted("shift_notes", "SN-1", "text", "non_personal", "M-07", 16, 20),
    ]
    cases = cases_from_planted(planted, {("shift_notes", "SN-1", "text"): TEXT})
    assert cases == [(TEXT, [(27, 30, "roster_first_name"), (16, 20, "non_personal")])]
    with pytest.raises(KeyError, match="SN-1"):
        cases_from_planted(planted, {})
