"""Recall per form of planted personal data, and how much non-personal text was redacted by mistake.

Ground truth is a list of ``(text, [(start, end, form), ...])``; spans whose form is ``non_personal`` mark tokens
that must survive. A personal span is caught when every character of it (less a trailing possessive "'s") lies
inside a redaction. Planted entities from the simulator (``PlantedEntity(table, key, column, form, value,
start, end)``) are turned into such cases by :func:`cases_from_planted`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from data_contracts.anonymization.engine import TextAnonymizer

NON_PERSONAL = "non_personal"
GroundTruth = tuple[str, Sequence[tuple[int, int, str]]]
Detector = Callable[[list[str]], list[list[tuple[int, int]]]]
_POSSESSIVE = re.compile(r"['’]s?$", re.IGNORECASE)


@dataclass(frozen=True)
class FormRecall:
    """How many planted spans of one form were fully redacted."""

    form: str
    planted: int
    caught: int

    @property
    def recall(self) -> float:
        return self.caught / self.planted if self.planted else 1.0


@dataclass(frozen=True)
class EvaluationReport:
    """Recall per form and over-redaction of non-personal tokens and characters."""

    forms: dict[str, FormRecall]
    non_personal_tokens: int
    non_personal_tokens_redacted: int
    non_personal_chars: int
    non_personal_chars_redacted: int
    missed: list[tuple[str, str]] = field(default_factory=list)  # (form, value) of spans not caught
    over_redacted: list[str] = field(default_factory=list)  # non-personal tokens that were touched

    @property
    def token_over_redaction(self) -> float:
        """Share of planted non-personal tokens touched by any redaction."""
        return (
            self.non_personal_tokens_redacted / self.non_personal_tokens if self.non_personal_tokens else 0.0
        )

    @property
    def char_over_redaction(self) -> float:
        """Share of non-blank characters outside personal spans that were redacted."""
        return self.non_personal_chars_redacted / self.non_personal_chars if self.non_personal_chars else 0.0

    def as_dict(self) -> dict[str, object]:
        """Plain figures for printing or JSON."""
        return {
            "recall": {f: round(r.recall, 4) for f, r in sorted(self.forms.items())},
            "planted": {f: r.planted for f, r in sorted(self.forms.items())},
            "token_over_redaction": round(self.token_over_redaction, 4),
            "char_over_redaction": round(self.char_over_redaction, 4),
        }


def _covered(text: str, start: int, end: int) -> tuple[int, int]:
    """The part of a planted span that must be redacted: a trailing possessive stays readable."""
    tail = _POSSESSIVE.search(text[start:end])
    if tail and end - start - len(tail.group()) > 1:
        end = start + tail.start()
    return start, end


def evaluate(cases: Iterable[GroundTruth], detect: Detector) -> EvaluationReport:
    """Score a detector (texts -> redacted spans per text) against ground-truth cases."""
    cases = list(cases)
    detections = detect([text for text, _ in cases])
    planted: dict[str, int] = defaultdict(int)
    caught: dict[str, int] = defaultdict(int)
    missed: list[tuple[str, str]] = []
    over: list[str] = []
    np_tokens = np_tokens_hit = np_chars = np_chars_hit = 0
    for (text, spans), found in zip(cases, detections, strict=True):
        redacted = bytearray(len(text))
        for start, end in found:
            redacted[start:end] = b"\x01" * (end - start)
        personal = bytearray(len(text))
        for start, end, form in spans:
            if form == NON_PERSONAL:
                np_tokens += 1
                if any(redacted[start:end]):
                    np_tokens_hit += 1
                    over.append(text[start:end])
                continue
            personal[start:end] = b"\x01" * (end - start)
            planted[form] += 1
            lo, hi = _covered(text, start, end)
            # Blanks between two redactions ("<PERSON:P-…> <PERSON>") reveal nothing.
            if all(redacted[k] or text[k].isspace() for k in range(lo, hi)):
                caught[form] += 1
            else:
                missed.append((form, text[start:end]))
        for position, char in enumerate(text):
            if not personal[position] and not char.isspace():
                np_chars += 1
                np_chars_hit += redacted[position]
    forms = {form: FormRecall(form, n, caught[form]) for form, n in planted.items()}
    return EvaluationReport(forms, np_tokens, np_tokens_hit, np_chars, np_chars_hit, missed, over)


def engine_detector(engine: TextAnonymizer) -> Detector:
    """A detector that reports the spans Presidio's analyzer finds with the engine's recognizers."""

    def detect(texts: list[str]) -> list[list[tuple[int, int]]]:
        return [[(r.start, r.end) for r in results] for results in engine.analyze(texts)]

    return detect


def cases_from_planted(
    planted: Iterable[object], texts: Mapping[tuple[str, str, str], str]
) -> list[GroundTruth]:
    """Group planted entities (duck-typed: table, key, column, form, start, end) into ground-truth cases.

    ``texts`` maps (table, key, column) to the text the entities were planted in.
    """
    spans: dict[tuple[str, str, str], list[tuple[int, int, str]]] = defaultdict(list)
    for entity in planted:
        where = (str(entity.table), str(entity.key), str(entity.column))  # type: ignore[attr-defined]
        if where not in texts:
            raise KeyError(f"planted entity {where}: no text for this (table, key, column)")
        spans[where].append((int(entity.start), int(entity.end), str(entity.form)))  # type: ignore[attr-defined]
    return [(texts[where], found) for where, found in spans.items()]
