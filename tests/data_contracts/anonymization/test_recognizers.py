"""Recognizers on their own: id formats read from the roster, phones, e-mails, off-roster names."""

from __future__ import annotations

import re

import pytest

from data_contracts.anonymization.pseudonyms import Roster
from data_contracts.anonymization.recognizers import (
    ContextNameRecognizer,
    EmailRecognizer,
    PhoneRecognizer,
    RosterIdRecognizer,
    induce_id_shapes,
)
from tests.data_contracts.anonymization import roster_frame

KEY = b"unit-test-key-0123456789"


def _found(recognizer, text: str) -> list[str]:
    return [text[r.start : r.end] for r in recognizer.analyze(text, [])]


@pytest.fixture(scope="module")
def roster() -> Roster:
    return Roster.from_frame(roster_frame(), KEY)


@pytest.mark.parametrize(
    ("values", "matches", "misses"),
    [
        (
            ["E-10023", "E-10024", "E-99001"],
            ["E-55555", "e 12345", "E12345"],
            ["M-07", "LOT-00012", "E204", "P-101"],
        ),
        (["B-4821-77", "B-0001-02"], ["B-1234-56"], ["B-12", "LOT-00012"]),
        (["BDG-00417", "BDG-00418"], ["BDG-99999"], ["LOT-00012", "WO-100233"]),
        (["7F3A9C21", "0B12CD9E"], ["A1B2C3D4"], ["Spindle1", "E204"]),
    ],
)
def test_id_shapes_are_read_from_the_roster(values: list[str], matches: list[str], misses: list[str]) -> None:
    pattern = re.compile("|".join(f"(?:{s.pattern()})" for s in induce_id_shapes(values)), re.IGNORECASE)
    for value in matches:
        assert pattern.fullmatch(value), value
    for value in misses:
        assert not pattern.fullmatch(value), value


def test_digit_only_ids_get_no_free_shape_but_exact_values_and_cues_are_found() -> None:
    assert induce_id_shapes(["104233", "104234"]) == []
    recognizer = RosterIdRecognizer("BADGE_ID", ["104233", "104234"], ("badge",))
    assert _found(recognizer, "order 104233 and badge 998877, qty 120000") == ["104233", "998877"]


@pytest.mark.parametrize(
    "phone",
    ["+420 601 234 567", "+49 151 2345 6789", "+44 7700 900123", "(555) 201-3344", "555-201-3344",
     "0171 2345678", "030/1234 5678", "+1-555-987-6543", "0049 89 1234567", "+33 1 23 45 67 89"],
)  # fmt: skip
def test_phone_formats(phone: str) -> None:
    assert _found(PhoneRecognizer(), f"call him on {phone} today") == [phone]


@pytest.mark.parametrize(
    "text",
    ["shift date 2025-03-01", "measured 12.5 mm at 14:30", "order WO-100233 qty 4500", "E204 at 06:15"],
)
def test_no_phone_in_dates_times_and_quantities(text: str) -> None:
    assert _found(PhoneRecognizer(), text) == []


def test_emails_including_internal_domains() -> None:
    text = "mail jan.novak@plant01.example.com or qa-lead@plant.local."
    assert _found(EmailRecognizer(), text) == ["jan.novak@plant01.example.com", "qa-lead@plant.local"]


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("Called contractor Jan Kowalczyk from Siemens.", ["Jan Kowalczyk"]),
        ("J. Okafor signed off the Gearbox repair.", ["J. Okafor"]),
        ("Mr. Haddad from Fanuc service informed.", ["Haddad"]),
        ("Ms Brown comes Wednesday.", ["Brown"]),
        ("spoke with pedro alvarez about M-09.", ["pedro alvarez"]),
        ("Lindgren's crew is on Line 2.", ["Lindgren"]),
        ("waiting for technician Lindgren.", ["Lindgren"]),
        ("T. van der Berg (Kuka) on site.", ["T. van der Berg"]),
        ("Handover to shift C. Coolant low on Press 3.", []),
        ("M-07 down, E204, LOT-00012 on hold, P-101 scrapped on Line 2 in March.", []),
        ("Spindle, Coolant, Press, Gearbox and Hydraulic checked on Monday.", []),
    ],
)
def test_context_names(roster: Roster, text: str, names: list[str]) -> None:
    assert _found(ContextNameRecognizer(roster), text) == names


def test_context_names_leave_roster_names_to_the_roster_recognizer(roster: Roster) -> None:
    assert _found(ContextNameRecognizer(roster), "Anna Novák and Schmidt checked it.") == []
