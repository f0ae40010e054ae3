"""Free text with ground truth: every planted entity is where the truth says, in every form the brief names."""

from __future__ import annotations

from collections import Counter

import pytest

from pipelines.simulator import SimulationConfig, simulate
from pipelines.simulator.notes import MATERIAL_WORDS, MONTHS, PERSONAL_FORMS, TECH_WORDS, VENDORS, WEEKDAYS
from pipelines.simulator.roster import FIRST_NAMES, LAST_NAMES

KEYS = {"shift_notes": "note_id", "machine_events": "event_id", "inspections": "inspection_id"}


@pytest.fixture(scope="module")
def history():
    return simulate(SimulationConfig(days=14, seed=21))


def test_name_lists_are_large_and_never_shop_floor_words():
    assert len(set(FIRST_NAMES)) >= 150 and len(set(LAST_NAMES)) >= 150
    vocabulary = {w.lower() for w in (*WEEKDAYS, *MONTHS, *MATERIAL_WORDS, *TECH_WORDS, *VENDORS)}
    assert not vocabulary & {n.lower() for n in (*FIRST_NAMES, *LAST_NAMES)}


def test_every_entity_sits_at_its_offsets(history):
    texts = {
        table: dict(zip(history.tables[table][key], history.tables[table][column], strict=True))
        for table, key, column in (
            ("shift_notes", "note_id", "text"),
            ("machine_events", "event_id", "comment"),
            ("inspections", "inspection_id", "remark"),
        )
    }
    assert history.personal_truth
    for e in history.personal_truth:
        assert texts[e.table][e.key][e.start : e.end] == e.value, e


def test_all_forms_are_planted_in_notes_comments_and_remarks(history):
    forms = Counter(e.form for e in history.personal_truth)
    assert set(PERSONAL_FORMS) <= set(forms)
    assert forms["non_personal"] > forms["roster_full_name"]
    tables = {e.table for e in history.personal_truth if e.form != "non_personal"}
    assert tables == {"shift_notes", "machine_events", "inspections"}


def test_forms_match_the_roster(history):
    emp = history.tables["employees"]
    full = set(emp["first_name"] + " " + emp["last_name"])
    lasts, firsts = set(emp["last_name"]), set(emp["first_name"])
    for e in history.personal_truth:
        if e.form == "roster_full_name":
            assert e.value in full
        elif e.form == "roster_lowercase":
            assert e.value in {n.lower() for n in full} and e.value == e.value.lower()
        elif e.form == "roster_last_name":
            assert e.value in lasts
        elif e.form == "roster_first_name":
            assert e.value in firsts
        elif e.form == "roster_possessive":
            assert e.value in lasts | firsts
        elif e.form == "badge_id":
            assert e.value in set(emp["badge_id"])
        elif e.form == "employee_no":
            assert e.value in set(emp["employee_no"])
        elif e.form == "email":
            assert e.value in set(emp["email"].dropna())
        elif e.form == "offroster_name":
            assert e.value.split()[-1] not in lasts


def test_possessives_are_followed_by_apostrophe_s(history):
    notes = dict(
        zip(history.tables["shift_notes"]["note_id"], history.tables["shift_notes"]["text"], strict=True)
    )
    for e in history.personal_truth:
        if e.form == "roster_possessive" and e.table == "shift_notes":
            assert notes[e.key][e.end : e.end + 2] == "'s"


def test_note_authors_are_on_the_roster(history):
    notes, emp = history.tables["shift_notes"], history.tables["employees"]
    badge_of = dict(zip(emp["first_name"] + " " + emp["last_name"], emp["badge_id"], strict=True))
    assert all(
        badge_of[name] == badge
        for name, badge in zip(notes["author_name"], notes["author_badge"], strict=True)
    )


def test_roster_formats(history):
    emp = history.tables["employees"]
    assert emp["employee_no"].str.fullmatch(r"E-\d{5}").all()
    assert emp["badge_id"].str.fullmatch(r"B-\d{4}-\d{2}").all()
    assert emp["email"].dropna().str.fullmatch(r"[a-z]+\.[a-z]+@plant01\.example\.com").all()
    assert emp["employee_no"].is_unique and emp["badge_id"].is_unique
