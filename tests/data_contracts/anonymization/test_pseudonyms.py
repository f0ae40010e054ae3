"""Keyed pseudonyms and roster resolution."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from data_contracts.anonymization.pseudonyms import Roster, RosterError, keyed_pseudonym, normalize
from tests.data_contracts.anonymization import roster_frame

KEY = b"unit-test-key-0123456789"


@pytest.fixture(scope="module")
def roster() -> Roster:
    return Roster.from_frame(roster_frame(), KEY)


def test_normalize_strips_casefolds_and_collapses_spaces() -> None:
    assert normalize("  Anna \t  NOVÁK ") == "anna novák"


def test_pseudonym_shape_and_stability() -> None:
    first = keyed_pseudonym(KEY, "value", "Anna Novák")
    assert re.fullmatch(r"P-[0-9a-f]{12}", first)
    assert keyed_pseudonym(KEY, "value", " anna   novák ") == first
    assert keyed_pseudonym(b"another-key-987654321", "value", "Anna Novák") != first


def test_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match="key"):
        keyed_pseudonym(b"", "value", "x")


@pytest.mark.parametrize(
    "form",
    ["E-10023", "e10023", "BDG-00417", "Anna Novák", "anna novak", "Novák, Anna", "NOVAK ANNA", "A. Novák",
     "anna.novak@plant01.example.com", "+420 601 234 567", "601234567"],
)  # fmt: skip
def test_every_form_of_a_person_gets_the_person_pseudonym(roster: Roster, form: str) -> None:
    anna = roster.person_by_id("E-10023")
    assert anna is not None
    assert roster.pseudonymize(form, KEY) == anna.pseudonym


def test_values_off_the_roster_are_pseudonymized_from_the_value(roster: Roster) -> None:
    pseudonym = roster.pseudonymize("Guest Writer", KEY)
    assert pseudonym == keyed_pseudonym(KEY, "value", "guest writer")
    assert pseudonym not in {p.pseudonym for p in roster.people}


def test_shared_first_name_is_ambiguous() -> None:
    frame = pd.concat([roster_frame(), roster_frame().iloc[[0]].assign(employee_no="E-9", last_name="Other")])
    roster = Roster.from_frame(frame, KEY)
    assert roster.resolve("Anna") is None
    assert roster.resolve("Anna Other") is not None


def test_roster_without_a_column_names_it() -> None:
    with pytest.raises(RosterError, match="badge_id"):
        Roster.from_frame(roster_frame().drop(columns=["badge_id"]), KEY)


def test_roster_row_without_employee_no_is_refused() -> None:
    frame = roster_frame()
    frame.loc[2, "employee_no"] = None
    with pytest.raises(RosterError, match="row 2: employee_no"):
        Roster.from_frame(frame, KEY)
