"""Free text through Presidio: every planted form is replaced, non-personal tokens survive, NER wiring."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import spacy

from data_contracts.anonymization.engine import AnonymizationError, TextAnonymizer, blank_pipeline
from data_contracts.anonymization.evaluation import NON_PERSONAL, engine_detector, evaluate
from data_contracts.anonymization.pseudonyms import Roster
from tests.data_contracts.anonymization import FORMS, ground_truth, roster_frame

KEY = b"unit-test-key-0123456789"
EXACT_FORMS = set(FORMS.values()) - {"offroster_name", NON_PERSONAL}


@pytest.fixture(scope="module")
def roster() -> Roster:
    return Roster.from_frame(roster_frame(), KEY)


@pytest.fixture(scope="module")
def engine(roster: Roster, tmp_path_factory: pytest.TempPathFactory) -> TextAnonymizer:
    return TextAnonymizer(roster, KEY, tmp_path_factory.mktemp("cache"))


def test_fixture_covers_every_form() -> None:
    assert {form for _, spans in ground_truth() for _, _, form in spans} == set(FORMS.values())


def test_recall_per_form_and_no_over_redaction(engine: TextAnonymizer) -> None:
    report = evaluate(ground_truth(), engine_detector(engine))
    for form in EXACT_FORMS:
        assert report.forms[form].recall == 1.0, (form, report.missed)
    assert report.forms["offroster_name"].recall >= 0.95, report.missed
    assert report.non_personal_tokens_redacted == 0, report.over_redacted
    assert report.char_over_redaction < 0.01


def test_no_planted_value_survives_and_non_personal_tokens_do(engine: TextAnonymizer) -> None:
    cases = ground_truth()
    for (text, spans), result in zip(cases, engine.anonymize([t for t, _ in cases]), strict=True):
        for start, end, form in spans:
            value = text[start:end]
            if form == NON_PERSONAL:
                assert value in result.text, (value, result.text)
            else:
                assert not re.search(rf"(?<!\w){re.escape(value)}(?!\w)", result.text, re.I), (
                    value,
                    result.text,
                )


def test_roster_people_carry_their_pseudonym_in_text(engine: TextAnonymizer, roster: Roster) -> None:
    anna = roster.person_by_id("E-10023")
    assert anna is not None
    (result,) = engine.anonymize(
        ["Handed over to Anna Novák (badge BDG-00417, E-10023); call +1 555 987 6543."]
    )
    assert result.text == (
        f"Handed over to <PERSON:{anna.pseudonym}> (badge <BADGE:{anna.pseudonym}>, "
        f"<EMPLOYEE:{anna.pseudonym}>); call <PHONE>."
    )
    assert result.found == result.replaced
    assert result.found["ROSTER_PERSON"] == 1 and result.found["PHONE_NUMBER"] == 1


def test_ids_of_the_roster_format_not_on_the_roster_get_a_value_pseudonym(engine: TextAnonymizer) -> None:
    (result,) = engine.anonymize(["badge BDG-99999 found"])
    assert re.fullmatch(r"badge <BADGE:P-[0-9a-f]{12}> found", result.text)


def test_blank_pipeline_is_created_lazily_once(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert not cache.exists()
    first = blank_pipeline(cache)
    assert (first / "config.cfg").exists()
    assert blank_pipeline(cache) == first


def test_ner_model_by_path_adds_spacy_recognizer(roster: Roster, tmp_path: Path) -> None:
    model = tmp_path / "ner"
    spacy.blank("en").to_disk(model)  # stands in for an approved NER model: the wiring is what is tested
    engine = TextAnonymizer(roster, KEY, tmp_path / "cache", ner_model_path=model)
    assert any(name.startswith("SpacyRecognizer") for name in engine.recognizer_names)
    (result,) = engine.anonymize(["Anna Novák checked M-07."])
    assert result.text.startswith("<PERSON:P-")


def test_missing_ner_model_is_a_clear_error(roster: Roster, tmp_path: Path) -> None:
    with pytest.raises(AnonymizationError, match=r"ner_model_path: .*no config\.cfg"):
        TextAnonymizer(roster, KEY, tmp_path / "cache", ner_model_path=tmp_path / "absent")
