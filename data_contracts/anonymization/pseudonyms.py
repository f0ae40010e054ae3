"""Keyed pseudonyms and the plant roster they resolve people through.

A pseudonym is an HMAC-SHA256 of a normalized value under the plant's secret key. A value that resolves to a
roster person (employee number, badge id, "First Last", "Last, First", e-mail, phone) gets the *person's*
pseudonym, so the same person carries the same pseudonym whichever form a column or a note uses.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pandas as pd

ROSTER_COLUMNS = ("employee_no", "badge_id", "first_name", "last_name", "email", "phone")
PSEUDONYM_PREFIX = "P-"
PSEUDONYM_HEX_CHARS = 12
_SPACES = re.compile(r"\s+")
_NOT_ALNUM = re.compile(r"[\W_]+")
_NOT_DIGIT = re.compile(r"\D+")
_POSSESSIVE = re.compile(r"['’]s?$")
_PHONE_LIKE = re.compile(r"\+?[\d\s()./-]{7,}")


class RosterError(ValueError):
    """The roster frame cannot be used: names the column and the rule it breaks."""


def normalize(value: str) -> str:
    """Strip, casefold and collapse inner whitespace: the form every pseudonym is computed over."""
    return _SPACES.sub(" ", value.strip()).casefold()


def fold_accents(value: str) -> str:
    """Drop diacritics ("Dvořák" -> "Dvorak") so a name typed without them still resolves."""
    decomposed = unicodedata.normalize("NFKD", value.replace("ß", "ss"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def id_key(value: str) -> str:
    """Compare ids ignoring case and separators ("e-10023" == "E10023")."""
    return _NOT_ALNUM.sub("", value).upper()


def phone_key(value: str) -> str:
    """The last nine digits of a phone number: the same line written nationally or internationally."""
    return _NOT_DIGIT.sub("", value)[-9:]


def keyed_pseudonym(key: bytes, domain: str, value: str) -> str:
    """HMAC-SHA256 of ``domain`` + normalized ``value`` under ``key``, as "P-" plus 12 hex characters."""
    if not key:
        raise ValueError("key: the pseudonym key must be non-empty bytes (Settings.pseudonym_secret)")
    digest = hmac.new(key, f"{domain}\x00{normalize(value)}".encode(), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:PSEUDONYM_HEX_CHARS]


def name_key(value: str) -> str:
    """Normalized, accent-folded form of a name (possessive "'s" dropped) used to look people up."""
    return fold_accents(normalize(_POSSESSIVE.sub("", value.strip())))


@dataclass(frozen=True)
class Person:
    """One roster entry with the pseudonym every mention of this person is replaced by."""

    employee_no: str
    badge_id: str | None
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None
    pseudonym: str

    @property
    def name_forms(self) -> list[str]:
        """How the person's name can be written: full, reversed, "Last, First" and each part alone."""
        first, last = self.first_name, self.last_name
        forms = [f for f in (first, last) if f]
        if first and last:
            forms += [f"{first} {last}", f"{last}, {first}", f"{last} {first}", f"{first[0]}. {last}"]
        return forms


def _text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    text = str(value).strip()
    return text or None


@dataclass(frozen=True)
class Roster:
    """The plant's people and every way to look one up; built per key by :meth:`from_frame`."""

    people: tuple[Person, ...]
    fingerprint: str
    _by_id: Mapping[str, Person] = field(repr=False)
    _by_name: Mapping[str, tuple[Person, ...]] = field(repr=False)
    _by_email: Mapping[str, Person] = field(repr=False)
    _by_phone: Mapping[str, Person] = field(repr=False)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, key: bytes) -> Roster:
        """Build the roster from the landed ``employees`` frame; each person's pseudonym is keyed by ``key``."""
        missing = [c for c in ROSTER_COLUMNS if c not in frame.columns]
        if missing:
            raise RosterError(f"roster: missing column(s) {missing}; the employees contract requires them")
        people: list[Person] = []
        for position, row in enumerate(frame[list(ROSTER_COLUMNS)].itertuples(index=False)):
            values = [_text(v) for v in row]
            if values[0] is None:
                raise RosterError(f"roster row {position}: employee_no is empty; every person needs one")
            people.append(Person(*values, pseudonym=keyed_pseudonym(key, "person", values[0])))  # type: ignore[misc]
        return cls._index(tuple(people))

    @classmethod
    def _index(cls, people: tuple[Person, ...]) -> Roster:
        by_id: dict[str, Person] = {}
        by_name: dict[str, list[Person]] = defaultdict(list)
        by_email: dict[str, Person] = {}
        by_phone: dict[str, Person] = {}
        for person in people:
            for ident in (person.employee_no, person.badge_id):
                if ident:
                    by_id.setdefault(id_key(ident), person)
            for form in person.name_forms:
                bucket = by_name[name_key(form)]
                if person not in bucket:
                    bucket.append(person)
            if person.email:
                by_email.setdefault(normalize(person.email), person)
            if person.phone and len(phone_key(person.phone)) >= 7:
                by_phone.setdefault(phone_key(person.phone), person)
        canonical = "\n".join(
            "\x1f".join(
                v or "" for v in (p.employee_no, p.badge_id, p.first_name, p.last_name, p.email, p.phone)
            )
            for p in sorted(people, key=lambda p: p.employee_no)
        )
        return cls(
            people=people,
            fingerprint=hashlib.sha256(canonical.encode()).hexdigest(),
            _by_id=by_id,
            _by_name={k: tuple(v) for k, v in by_name.items()},
            _by_email=by_email,
            _by_phone=by_phone,
        )

    def person_by_id(self, value: str) -> Person | None:
        """The person whose employee number or badge id this is (case and separators ignored)."""
        return self._by_id.get(id_key(value))

    def people_named(self, value: str) -> tuple[Person, ...]:
        """Everyone a name form ("Novak", "anna novak", "Novak, Anna", "Novak's") may refer to."""
        return self._by_name.get(name_key(value), ())

    def resolve(self, value: str) -> Person | None:
        """The one person a value stands for, or None when it is not on the roster or is ambiguous."""
        person = self.person_by_id(value) or self._by_email.get(normalize(value))
        if person is None and _PHONE_LIKE.fullmatch(value.strip()):
            person = self._by_phone.get(phone_key(value))
        if person is None:
            named = self.people_named(value)
            person = named[0] if len(named) == 1 else None
        return person

    def pseudonymize(self, value: str, key: bytes) -> str:
        """The person's pseudonym when the value resolves to one, else a pseudonym of the value itself."""
        person = self.resolve(value)
        return person.pseudonym if person else keyed_pseudonym(key, "value", value)

    def ids(self, column: str) -> list[str]:
        """The non-empty values of one id column (``employee_no`` or ``badge_id``)."""
        return [v for p in self.people if (v := getattr(p, column))]

    def name_tokens(self) -> Iterable[str]:
        """Every name form of every person, for the deny-list recognizer."""
        for person in self.people:
            yield from person.name_forms
