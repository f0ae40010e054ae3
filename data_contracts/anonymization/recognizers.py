"""Presidio recognizers for shop-floor free text: roster people, ids, phones, e-mails and off-roster names.

All recognizers are deterministic and offline. The roster and id recognizers are built from the landed roster,
so they know the plant's people and read the id formats from the roster values instead of assuming them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from data_contracts.anonymization.lexicon import (
    AFTER_CUES,
    GIVEN_NAMES,
    NON_NAME_WORDS,
    ROLE_CUES,
    SURNAMES,
    TITLE_CUES,
    VERB_CUES,
)
from data_contracts.anonymization.pseudonyms import Roster, fold_accents, id_key, name_key

ROSTER_PERSON = "ROSTER_PERSON"
PERSON = "PERSON"
EMPLOYEE_NO = "EMPLOYEE_NO"
BADGE_ID = "BADGE_ID"
PHONE_NUMBER = "PHONE_NUMBER"
EMAIL_ADDRESS = "EMAIL_ADDRESS"
RECOGNIZER_VERSION = "1.0.0"

_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
_PARTICLES = frozenset(
    ("van", "von", "de", "der", "den", "da", "di", "del", "della", "du", "le", "la", "ten", "ter")
)
# Words before "X." that make X a shift, grade or option letter rather than an initial ("shift B. Coolant").
_NOT_INITIAL_AFTER = frozenset(
    (
        *(
            "shift",
            "line",
            "cell",
            "station",
            "zone",
            "area",
            "bay",
            "grade",
            "class",
            "type",
            "size",
            "option",
        ),
        *("step", "phase", "section", "point", "item", "plan", "level", "version", "rev", "table", "figure"),
        *("fig", "appendix", "chapter", "part", "no", "nr", "group", "team", "crew", "category", "plant"),
    )
)
# Lower-case words with these endings are words, not names ("reachable", "running").
_NOT_NAME_ENDINGS = ("able", "ible", "ing", "ed", "ly", "tion", "sion", "ment", "ness", "ful", "less", "ous")
_WEAK_CUES = frozenset(("with", "from", "by", "for", "and", "to"))


class Token:
    """A word of the text with what the name rules need to know about it, computed once per text."""

    __slots__ = (
        "attached",
        "capitalised",
        "end",
        "folded",
        "key",
        "lower",
        "possessive",
        "start",
        "text",
        "vocabulary",
    )

    def __init__(self, start: int, end: int, text: str, possessive: bool, attached: bool) -> None:
        self.start = start
        self.end = end  # end of the name part (a possessive "'s" is left outside)
        self.text = text
        self.possessive = possessive
        self.attached = attached  # glued to digits or id separators ("M-07", "E204"): never a name
        self.folded = text.casefold()
        self.key = _folded_key(self.folded)  # accent-folded, as roster names are looked up
        self.capitalised = text[0].isupper() and not (len(text) > 1 and text.isupper())
        self.lower = text.islower()
        self.vocabulary = self.folded in NON_NAME_WORDS


@lru_cache(maxsize=65536)
def _folded_key(folded: str) -> str:
    return fold_accents(folded)


@lru_cache(maxsize=256)
def tokenize(text: str) -> tuple[Token, ...]:
    """Split text into word tokens (cached: every recognizer of one analyze call reads the same tokens)."""
    tokens: list[Token] = []
    size = len(text)
    for match in _WORD.finditer(text):
        start, stop = match.span()
        word = match.group()
        end = stop
        possessive = False
        if len(word) > 3 and word[-2] in "'’" and word[-1] in "sS":
            word, end, possessive = word[:-2], stop - 2, True
        before = text[start - 1] if start else " "
        after = text[stop] if stop < size else " "
        attached = (
            before.isdigit()
            or before in "-_/"
            or after.isdigit()
            or after in "_/"
            or (after == "-" and stop + 1 < size and text[stop + 1].isdigit())
        )
        tokens.append(Token(start, end, word, possessive, attached))
    return tuple(tokens)


def _gap(text: str, left: Token, right: Token) -> str:
    return text[left.end : right.start]


def _joined(text: str, left: Token, right: Token) -> bool:
    """Two tokens read as one name: only spaces between them and no possessive on the left."""
    gap = _gap(text, left, right)
    return not left.possessive and 0 < len(gap) <= 2 and gap.isspace() and "\n" not in gap


def _result(
    entity: str, start: int, end: int, score: float, recognizer: EntityRecognizer
) -> RecognizerResult:
    return RecognizerResult(
        entity_type=entity,
        start=start,
        end=end,
        score=score,
        recognition_metadata={
            RecognizerResult.RECOGNIZER_NAME_KEY: recognizer.name,
            RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: recognizer.id,
        },
    )


class RosterNameRecognizer(EntityRecognizer):
    """Deny list of the roster: full names, "Last, First", "F. Last", first and last names in any case."""

    def __init__(self, roster: Roster) -> None:
        self._names = {name_key(form) for form in roster.name_tokens()}
        # For each first word of a name form, the most words a form starting with it has.
        self._starts: dict[str, int] = {}
        for name in self._names:
            words = name.split(" ")
            first = words[0].rstrip(",.")
            self._starts[first] = max(self._starts.get(first, 0), len(words))
        super().__init__(
            supported_entities=[ROSTER_PERSON], name="RosterNameRecognizer", version=RECOGNIZER_VERSION
        )

    def load(self) -> None:
        """Nothing to load: the deny list is built from the roster."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """Find every roster name form in the text (longest form first)."""
        tokens = tokenize(text)
        results: list[RecognizerResult] = []
        i = 0
        while i < len(tokens):
            last = self._match_at(text, tokens, i)
            if last is None:
                i += 1
                continue
            results.append(_result(ROSTER_PERSON, tokens[i].start, tokens[last].end, 1.0, self))
            i = last + 1
        return results

    def _match_at(self, text: str, tokens: Sequence[Token], i: int) -> int | None:
        """Index of the last token of the longest roster name starting at token i, if any."""
        first = tokens[i]
        longest = self._starts.get(first.key)
        if longest is None or first.attached:
            return None
        keys = [first.key]
        for j in range(i + 1, min(i + longest, len(tokens))):
            previous, token = tokens[j - 1], tokens[j]
            gap = text[previous.end : token.start]
            if previous.possessive or token.attached or len(gap) > 3 or "\n" in gap:
                break
            keys.append(" ".join(gap.split()) + " " if gap.strip() else " ")
            keys.append(token.key)
        # keys alternates words and normalized gaps: try the longest phrase first.
        for n in range(len(keys), 0, -2):
            if "".join(keys[:n]) in self._names:
                return i + n // 2
        return None


@dataclass(frozen=True)
class IdShape:
    """A format read from roster ids: a literal prefix several ids share, then segments of a class and length."""

    prefix: str
    segments: tuple[tuple[str, int, int], ...]  # (class, min length, max length); class "sep" is a separator

    def pattern(self) -> str:
        """The regular expression of the shape; separators may be typed differently or left out."""
        classes = {"digit": r"\d", "hex": r"[0-9A-Fa-f]", "alnum": r"[0-9A-Za-z]"}
        letters = re.sub(r"[^A-Za-z0-9]+", "", self.prefix)
        parts = [re.escape(letters) + _SEPARATOR] if letters else []
        for kind, low, high in self.segments:
            parts.append(_SEPARATOR if kind == "sep" else f"{classes[kind]}{{{low},{high}}}")
        return "".join(parts)


_SEPARATOR = r"[-_ /#.]?"
_PREFIX = re.compile(r"^([A-Za-z]*[^A-Za-z0-9]*)(.*)$")
_SEGMENT = re.compile(r"[A-Za-z0-9]+|[^A-Za-z0-9]+")


def _segment_class(segment: str) -> str:
    if not segment.isalnum():
        return "sep"
    if segment.isdigit():
        return "digit"
    return "hex" if re.fullmatch(r"[0-9A-Fa-f]+", segment) else "alnum"


def induce_id_shapes(values: Iterable[str]) -> list[IdShape]:
    """Read id formats from roster values ("E-10023" -> "E" + 5 digits, "B-4821-77") without assuming any.

    A prefix counts as literal when at least two ids (or the only id) share it; ids whose prefix is unique are
    taken whole. Shapes of digits only without a prefix are too generic to look for without a cue, so they are
    left out (the exact roster values are still found).
    """
    values = [v.strip() for v in values if v and v.strip()]
    split = [_PREFIX.match(v).groups() for v in values]  # type: ignore[union-attr]
    counts = Counter(p.upper() for p, _ in split)
    groups: dict[tuple[str, tuple[str, ...]], list[list[int]]] = {}
    for prefix, body in split:
        if not body or not (counts[prefix.upper()] >= 2 or len(values) == 1):
            prefix, body = "", prefix + body
        segments = _SEGMENT.findall(body)
        skeleton = tuple(_segment_class(seg) for seg in segments)
        groups.setdefault((prefix.upper(), skeleton), []).append([len(seg) for seg in segments])
    shapes = []
    for (prefix, skeleton), lengths in sorted(groups.items()):
        if not prefix and set(skeleton) <= {"digit", "sep"}:
            continue
        spans = tuple(
            (kind, min(ls[i] for ls in lengths), max(ls[i] for ls in lengths))
            for i, kind in enumerate(skeleton)
        )
        shapes.append(IdShape(prefix, spans))
    return shapes


_ID_TOKEN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]+(?:[-_/.][A-Za-z0-9]+)*")


class RosterIdRecognizer(EntityRecognizer):
    """Employee numbers or badge ids: the roster's exact values and any id of the same format."""

    def __init__(self, entity: str, values: Sequence[str], cue_words: Sequence[str]) -> None:
        self.entity = entity
        self._exact = {id_key(v) for v in values if v and v.strip()}
        # Length bounds of a written id, to skip the lookup for most words (separators may be added or dropped).
        self._min_chars = min((len(k) for k in self._exact), default=0)
        self._max_chars = 2 * max((len(k) for k in self._exact), default=0)
        shapes = "|".join(s.pattern() for s in induce_id_shapes(values))
        self._shapes = re.compile(rf"(?<![A-Za-z0-9-])(?:{shapes})(?![A-Za-z0-9])", re.I) if shapes else None
        # Numbers right after a cue word ("badge 4471") even when the roster ids carry no prefix.
        cue = "|".join(re.escape(c) for c in cue_words)
        self._cued = re.compile(
            rf"\b(?:{cue})\s*(?:no\.?|nr\.?|number|id|#)?\s*[:#]?\s*([A-Za-z]{{0,4}}[-_]?\d[-\d]{{2,14}}\d)(?![A-Za-z0-9])",
            re.IGNORECASE,
        )
        super().__init__(
            supported_entities=[entity], name=f"RosterIdRecognizer[{entity}]", version=RECOGNIZER_VERSION
        )

    def load(self) -> None:
        """Nothing to load: the patterns are built from the roster."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """Find roster ids (however they are separated) and ids of the roster's formats."""
        results = [
            _result(self.entity, m.start(), m.end(), 1.0, self)
            for m in _ID_TOKEN.finditer(text)
            if self._min_chars <= m.end() - m.start() <= self._max_chars and id_key(m.group()) in self._exact
        ]
        if self._shapes is not None:
            results += [
                _result(self.entity, m.start(), m.end(), 0.95, self) for m in self._shapes.finditer(text)
            ]
        results += [_result(self.entity, m.start(1), m.end(1), 0.9, self) for m in self._cued.finditer(text)]
        return results


_PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"(?:\+|00)\d{1,3}[\s./-]?(?:\(0\)[\s./-]?)?(?:\(?\d{1,5}\)?[\s./-]?){1,5}\d{2,5}"  # +49 170 1234567
    r"|\(\d{2,5}\)[\s./-]?\d{2,5}(?:[\s./-]?\d{2,5}){1,3}"  # (555) 123-4567
    r"|0\d{1,4}[\s./-]\d{2,8}(?:[\s./-]\d{2,8}){0,3}"  # 0171 2345678, 030 1234 5678
    r"|0\d{8,11}"  # 01712345678
    r"|\d{3}[\s.-]\d{3}[\s.-]\d{4}"  # 555-123-4567
    r")(?![\w])"
)
_PHONE_CUED = re.compile(
    r"\b(?:tel|phone|mobile|mob|cell|call|ext|extension|fax|reach(?:ed)?\s+(?:him|her|them)?\s*(?:at|on))"
    r"\.?\s*[:#]?\s*(\+?\d[\d\s./()-]{4,}\d)(?!\w)",
    re.IGNORECASE,
)


class PhoneRecognizer(EntityRecognizer):
    """Phone numbers in international, national and North American formats, and numbers after "tel"/"call"."""

    def __init__(self, min_digits: int = 7, max_digits: int = 15) -> None:
        self.min_digits, self.max_digits = min_digits, max_digits
        super().__init__(
            supported_entities=[PHONE_NUMBER], name="PhoneRecognizer", version=RECOGNIZER_VERSION
        )

    def load(self) -> None:
        """Nothing to load."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """Find phone numbers with a plausible count of digits."""
        results = []
        spans = [m.span() for m in _PHONE.finditer(text)] + [m.span(1) for m in _PHONE_CUED.finditer(text)]
        for start, end in spans:
            candidate = text[start:end].rstrip(" ./-")
            digits = sum(ch.isdigit() for ch in candidate)
            if self.min_digits <= digits <= self.max_digits and not _looks_like_date(candidate):
                results.append(_result(PHONE_NUMBER, start, start + len(candidate), 0.9, self))
        return results


_DATE = re.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}$|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$")


def _looks_like_date(candidate: str) -> bool:
    return bool(_DATE.match(candidate.strip()))


_EMAIL = re.compile(r"(?<![\w.+-])[\w.%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+(?![\w-])")


class EmailRecognizer(EntityRecognizer):
    """E-mail addresses, including plant-internal domains a public-suffix check would reject."""

    def __init__(self) -> None:
        super().__init__(
            supported_entities=[EMAIL_ADDRESS], name="EmailRecognizer", version=RECOGNIZER_VERSION
        )

    def load(self) -> None:
        """Nothing to load."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """Find e-mail addresses."""
        return [_result(EMAIL_ADDRESS, m.start(), m.end(), 1.0, self) for m in _EMAIL.finditer(text)]


def _phrases(words: Iterable[str]) -> dict[int, frozenset[tuple[str, ...]]]:
    by_length: dict[int, set[tuple[str, ...]]] = {}
    for phrase in words:
        parts = tuple(phrase.casefold().split())
        by_length.setdefault(len(parts), set()).add(parts)
    return {n: frozenset(p) for n, p in by_length.items()}


class ContextNameRecognizer(EntityRecognizer):
    """Names not on the roster: after cue words, initials + surname, known given/surnames, possessives, pairs.

    Tokens that are roster names are left to :class:`RosterNameRecognizer` so that a roster person keeps their
    pseudonym. Shop-floor words (``lexicon.NON_NAME_WORDS``) never start a name except right after a title.
    """

    def __init__(self, roster: Roster) -> None:
        self._roster_words = {fold_accents(w.casefold()) for f in roster.name_tokens() for w in f.split()}
        self._roster_first = {fold_accents(p.first_name.casefold()) for p in roster.people if p.first_name}
        self._strong = _phrases([*ROLE_CUES, *(c for c in VERB_CUES if c not in _WEAK_CUES)])
        self._weak = _phrases(_WEAK_CUES)
        self._cue_enders = {p[-1] for d in (self._strong, self._weak) for ps in d.values() for p in ps}
        self._titles = frozenset(TITLE_CUES)
        self._after = _phrases(AFTER_CUES)
        self._given = GIVEN_NAMES
        self._known = (GIVEN_NAMES | SURNAMES) - NON_NAME_WORDS
        super().__init__(
            supported_entities=[PERSON], name="ContextNameRecognizer", version=RECOGNIZER_VERSION
        )

    def load(self) -> None:
        """Nothing to load: the cue and name lists are in ``lexicon``."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """Find off-roster names by the rules in the class docstring."""
        tokens = tokenize(text)
        spans: list[tuple[int, int, float]] = []
        i = 0
        while i < len(tokens):
            found = self._name_at(text, tokens, i)
            if found is None:
                i += 1
                continue
            last, score = found
            spans.append((tokens[i].start, tokens[last].end, score))
            i = last + 1
        return [_result(PERSON, s, e, score, self) for s, e, score in spans]

    # --- token predicates -------------------------------------------------------------------------
    def _roster(self, token: Token) -> bool:
        return token.key in self._roster_words

    def _nameish(self, token: Token) -> bool:
        """Capitalised, not a shop-floor word, not an id, not a roster name."""
        return token.capitalised and not token.attached and not token.vocabulary and not self._roster(token)

    def _initial(self, text: str, tokens: Sequence[Token], i: int) -> bool:
        token = tokens[i]
        if len(token.text) != 1 or not token.text.isupper() or token.attached:
            return False
        if token.end >= len(text) or text[token.end] != ".":
            return False
        previous = tokens[i - 1] if i > 0 else None
        return not (previous and previous.folded in _NOT_INITIAL_AFTER and _joined(text, previous, token))

    def _cue_before(
        self, text: str, tokens: Sequence[Token], i: int, phrases: dict[int, frozenset[tuple[str, ...]]]
    ) -> bool:
        if i == 0 or tokens[i - 1].folded not in self._cue_enders:
            return False
        if any(mark in text[tokens[i - 1].end : tokens[i].start] for mark in ".!?;\n"):
            return False  # a cue does not reach across the end of a sentence ("… informed. Ref 3")
        for n, options in phrases.items():
            if i - n >= 0 and tuple(t.folded for t in tokens[i - n : i]) in options:
                return True
        return False

    def _cue_after(self, tokens: Sequence[Token], last: int) -> bool:
        for n, options in self._after.items():
            window = tokens[last + 1 : last + 1 + n]
            if len(window) == n and tuple(t.folded for t in window) in options:
                return True
        return False

    # --- rules -------------------------------------------------------------------------------------
    def _extend(self, text: str, tokens: Sequence[Token], last: int, limit: int = 3) -> int:
        """Grow a name to the right over capitalised name words and particles ("van der Berg")."""
        taken = 1
        while last + 1 < len(tokens) and taken < limit and _joined(text, tokens[last], tokens[last + 1]):
            nxt = tokens[last + 1]
            if nxt.folded in _PARTICLES and last + 2 < len(tokens) and self._nameish(tokens[last + 2]):
                last += 2
            elif self._nameish(nxt) or (
                nxt.capitalised and nxt.folded in self._known and not self._roster(nxt)
            ):
                last += 1
            else:
                break
            taken += 1
        return last

    def _lower_name(self, text: str, tokens: Sequence[Token], i: int) -> int | None:
        """A lower-case name right after a strong cue ("called jan kowalski"): up to two non-vocabulary words."""
        token = tokens[i]
        if (
            not token.lower
            or token.vocabulary
            or token.attached
            or len(token.text) < 2
            or self._roster(token)
            or token.folded.endswith(_NOT_NAME_ENDINGS)
        ):
            return None
        last = i
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if nxt and _joined(text, token, nxt) and nxt.lower and not nxt.vocabulary and not nxt.attached:
            last = i + 1
        return last

    def _name_at(self, text: str, tokens: Sequence[Token], i: int) -> tuple[int, float] | None:
        """(last token, score) of an off-roster name starting at token i, or None."""
        token = tokens[i]
        if token.attached:
            return None
        if self._roster(token):
            # A roster first name before an unknown surname is someone else ("Jan Okafor", not "Jan Novák").
            nxt = tokens[i + 1] if i + 1 < len(tokens) else None
            if (
                token.capitalised
                and token.key in self._roster_first
                and nxt
                and _joined(text, token, nxt)
                and self._nameish(nxt)
            ):
                return self._extend(text, tokens, i + 1), 0.85
            return None
        after_title = i > 0 and tokens[i - 1].folded in self._titles and not tokens[i - 1].attached
        if self._initial(text, tokens, i):
            j = i + 1
            if j < len(tokens) and self._initial(text, tokens, j) and tokens[j].start - tokens[i].end <= 2:
                j += 1
            # "T. van der Berg": particles may stand between the initial and the surname.
            while (
                j + 1 < len(tokens)
                and tokens[j].folded in _PARTICLES
                and _joined(text, tokens[j], tokens[j + 1])
            ):
                j += 1
            if j < len(tokens) and tokens[j].start - tokens[j - 1].end <= 3:
                surname = tokens[j]
                if surname.capitalised and (self._nameish(surname) or surname.folded in self._known):
                    return j, 0.85
            return None
        # Right after a title even a shop-floor word is a name ("Mr Brown", "Ms Green", "mr kowalski").
        if after_title and (token.capitalised or (token.lower and not token.vocabulary)):
            return self._extend(text, tokens, i), 0.85
        strong_cue = self._cue_before(text, tokens, i, self._strong)
        if strong_cue and not token.capitalised:
            last = self._lower_name(text, tokens, i)
            return (last, 0.6) if last is not None else None
        if not token.capitalised:
            return None
        # A given name before a capitalised word is a name even when it is also a word ("Jan Kowalski").
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if token.folded in self._given and nxt and _joined(text, token, nxt) and self._nameish(nxt):
            return self._extend(text, tokens, i + 1), 0.85
        if not self._nameish(token):
            return None
        last = self._extend(text, tokens, i)
        if (
            last > i
            or strong_cue
            or token.folded in self._known
            or token.possessive
            or self._cue_before(text, tokens, i, self._weak)
            or self._cue_after(tokens, last)
        ):
            return last, 0.7
        return None


def build_recognizers(roster: Roster) -> list[EntityRecognizer]:
    """The recognizers free-text anonymization runs, built for one roster."""
    return [
        RosterNameRecognizer(roster),
        RosterIdRecognizer(EMPLOYEE_NO, roster.ids("employee_no"), ("employee", "emp", "personnel", "staff")),
        RosterIdRecognizer(BADGE_ID, roster.ids("badge_id"), ("badge", "card")),
        PhoneRecognizer(),
        EmailRecognizer(),
        ContextNameRecognizer(roster),
    ]
