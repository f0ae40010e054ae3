"""The simulated employee roster: multi-national names, employee numbers, badges, e-mails and phones.

Formats: employee_no ``E-\\d{5}`` (E-10023), badge_id ``B-\\d{4}-\\d{2}`` (B-4821-77), e-mail
``first.last@<plant domain>`` (ASCII-folded, lower case), phone in three international formats
(``+420 601 234 567``, ``+49 151 2345 6789``, ``+44 7700 900123``).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import numpy as np
import pandas as pd

# Names chosen to never collide with shop-floor words (no "Will", "Mark", "May", "Can", "Park", "Sun" ...).
FIRST_NAMES: tuple[str, ...] = (
    # Czech / Slovak
    "Jan", "Petr", "Tomáš", "Lukáš", "Jakub", "Ondřej", "Pavel", "Jiří", "Zdeněk", "Kateřina", "Lucie",
    "Tereza", "Veronika", "Hana", "Zuzana", "Markéta", "Barbora", "Radek", "Vojtěch",
    # German
    "Jürgen", "Klaus", "Stefan", "Matthias", "Katrin", "Sabine", "Ulrike", "Dieter", "Wolfgang", "Heike",
    "Jörg", "Anke", "Torsten", "Birgit", "Uwe",
    # Polish
    "Krzysztof", "Agnieszka", "Katarzyna", "Grzegorz", "Tomasz", "Piotr", "Magdalena", "Wojciech", "Dorota",
    # Spanish / Latin American
    "José", "Carmen", "Javier", "Alejandro", "Lucía", "Mercedes", "Pilar", "Diego", "Raúl", "Inés", "Sofía",
    "Mateo", "Valentina", "Camila", "Rodrigo",
    # Italian
    "Giuseppe", "Francesca", "Alessandro", "Giulia", "Lorenzo", "Chiara", "Matteo", "Federica", "Davide",
    "Simona",
    # French
    "Élodie", "Mathieu", "Camille", "Aurélien", "Sébastien", "Margaux", "Thibault", "Océane", "Julien", "Amélie",
    # Turkish
    "Mehmet", "Ayşe", "Emre", "Elif", "Burak", "Zeynep", "Cem", "Deniz", "Oğuz", "Selin",
    # Indian
    "Arjun", "Priya", "Rahul", "Ananya", "Vikram", "Deepika", "Sanjay", "Lakshmi", "Rohan", "Kavya", "Aditya",
    "Meera",
    # Chinese / Vietnamese
    "Wei", "Jing", "Xiaoming", "Hui", "Lei", "Mei", "Zhiwei", "Minh", "Thanh", "Linh", "Huong", "Tuan", "Quang",
    # West African
    "Chinedu", "Ngozi", "Oluwaseun", "Adebayo", "Amara", "Emeka", "Folake", "Kwame", "Thabo",
    # Nordic
    "Lars", "Ingrid", "Sven", "Astrid", "Nils", "Freya", "Mikael", "Sigrid",
    # Arabic
    "Omar", "Fatima", "Youssef", "Layla", "Karim", "Amina", "Tariq", "Nadia", "Samir", "Hassan",
    # Japanese / Korean
    "Haruto", "Yuki", "Kenji", "Aiko", "Hiroshi", "Sakura", "Minjun", "Jiwoo", "Seojun", "Hyun",
    # English
    "Emily", "Daniel", "Rachel", "Kevin", "Laura", "Brian", "Megan", "Patrick", "Olivia", "Ethan",
    # Greek / Portuguese
    "Nikos", "Eleni", "Giorgos", "Dimitra", "Kostas", "João", "Thiago", "Beatriz", "Gonçalo", "Larissa",
    # Hungarian / Romanian / Eastern European
    "Zoltán", "Eszter", "Bence", "Ioana", "Andrei", "Mihai", "Dmitri", "Olena", "Sergei", "Natalia",
    "Oleksandr", "Irina",
)  # fmt: skip

LAST_NAMES: tuple[str, ...] = (
    # Czech
    "Novák", "Svoboda", "Dvořák", "Černý", "Procházka", "Kučera", "Veselý", "Horák", "Němec", "Pokorný",
    "Pospíšil", "Hájek", "Jelínek",
    # German
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Hoffmann", "Schulz",
    "Richter", "Schröder", "Neumann", "Zimmermann", "Krüger",
    # Polish
    "Kowalski", "Wiśniewski", "Wójcik", "Kamiński", "Lewandowski", "Zieliński", "Szymański", "Woźniak",
    "Dąbrowski", "Jankowski", "Mazur", "Krawczyk",
    # Spanish
    "García", "Fernández", "González", "Rodríguez", "López", "Martínez", "Sánchez", "Pérez", "Gómez", "Díaz",
    "Alvarez", "Romero", "Navarro", "Torres", "Ramírez", "Ortega", "Castillo", "Morales",
    # Italian
    "Rossi", "Russo", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco", "Gallo", "Conti",
    "Mancini", "Lombardi", "Moretti",
    # French
    "Dubois", "Moreau", "Laurent", "Lefebvre", "Girard", "Fontaine", "Rousseau", "Mercier", "Bonnet",
    "Chevalier", "Lambert", "Faure", "Gauthier",
    # Turkish
    "Kaya", "Demir", "Şahin", "Çelik", "Öztürk", "Aslan", "Doğan", "Arslan", "Koç", "Özdemir",
    # Indian
    "Sharma", "Patel", "Singh", "Kumar", "Gupta", "Reddy", "Iyer", "Nair", "Mehta", "Joshi", "Desai",
    "Chatterjee", "Banerjee", "Kapoor",
    # Chinese / Vietnamese
    "Wang", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Zhou", "Zhu", "Guo", "Luo", "Nguyen", "Tran",
    "Pham", "Hoang", "Phan", "Ngo",
    # West African
    "Okafor", "Adeyemi", "Okonkwo", "Balogun", "Nwosu", "Chukwu", "Ogunleye", "Mensah", "Boateng", "Owusu",
    # Nordic
    "Johansson", "Andersson", "Karlsson", "Nilsson", "Eriksson", "Larsen", "Hansen", "Jensen", "Nielsen",
    "Lindqvist", "Halvorsen",
    # Arabic
    "Haddad", "Mansour", "Khalil", "Nasser", "Saleh", "Hamdan", "Farouk", "Rahman", "Benali",
    # Japanese / Korean
    "Tanaka", "Suzuki", "Watanabe", "Yamamoto", "Nakamura", "Kobayashi", "Sato", "Choi", "Jung", "Kang", "Yoon",
    # English
    "Johnson", "Williams", "Davies", "Evans", "Thompson", "Robinson", "Walker", "Wright", "Hughes", "Edwards",
    "Harris",
    # Greek / Portuguese
    "Papadopoulos", "Georgiou", "Nikolaidis", "Karagiannis", "Silva", "Santos", "Oliveira", "Souza", "Pereira",
    "Almeida",
    # Hungarian / Romanian / Eastern European
    "Nagy", "Horváth", "Tóth", "Szabó", "Popescu", "Ionescu", "Dumitru", "Stoica", "Ivanov", "Petrov",
    "Smirnov", "Kovalenko", "Shevchenko", "Bondarenko", "Volkov", "Sokolov",
)  # fmt: skip

OFF_ROSTER_LAST_RESERVE = (
    40  # last names kept off the roster, for contractors, visitors and service technicians
)
PHONE_FORMATS = ("cz", "de", "uk")
SHIFTS = ("A", "B", "C")


def ascii_fold(text: str) -> str:
    """Drop accents (Novák -> Novak) for e-mail addresses."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


@dataclass(frozen=True)
class Person:
    """One roster entry with the role and crew the simulator gave it (role and crew are not in the contract)."""

    employee_no: str
    badge_id: str
    first_name: str
    last_name: str
    email: str | None
    phone: str | None
    role: str  # operator | planner | inspector | supervisor
    line_id: str | None
    shift: str | None

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


@dataclass(frozen=True)
class Roster:
    """The roster plus the last names reserved for people who are not on it."""

    people: tuple[Person, ...]
    off_roster_last_names: tuple[str, ...]

    def with_role(self, role: str) -> list[Person]:
        """Everyone with one role, in roster order."""
        return [p for p in self.people if p.role == role]

    def crew(self, line_id: str, shift: str) -> list[Person]:
        """Operators of one line and shift."""
        return [p for p in self.people if p.role == "operator" and p.line_id == line_id and p.shift == shift]

    def frame(self) -> pd.DataFrame:
        """The canonical ``employees`` table."""
        columns = ["employee_no", "badge_id", "first_name", "last_name", "email", "phone"]
        return pd.DataFrame([{c: getattr(p, c) for c in columns} for p in self.people], columns=columns)


def _phone(rng: np.random.Generator) -> str:
    kind = PHONE_FORMATS[int(rng.integers(len(PHONE_FORMATS)))]
    d = rng.integers(0, 10, size=12)
    s = "".join(str(x) for x in d)
    if kind == "cz":
        return f"+420 6{s[0:2]} {s[2:5]} {s[5:8]}"
    if kind == "de":
        return f"+49 15{s[0]} {s[1:5]} {s[5:9]}"
    return f"+44 7700 9{s[0:5]}"


def _roles(
    n: int, n_planners: int, n_inspectors: int, n_lines: int
) -> list[tuple[str, str | None, str | None]]:
    roles: list[tuple[str, str | None, str | None]] = [("planner", None, None)] * n_planners
    roles += [("inspector", None, None)] * n_inspectors
    roles += [("supervisor", f"L{i + 1}", None) for i in range(n_lines)]
    crews = [(f"L{i + 1}", s) for s in SHIFTS for i in range(n_lines)]
    roles += [("operator", *crews[k % len(crews)]) for k in range(n - len(roles))]
    return roles


def build_roster(
    rng: np.random.Generator, n: int, n_planners: int, n_inspectors: int, n_lines: int, domain: str
) -> Roster:
    """Draw a roster of ``n`` people with unique names, numbers, badges and e-mails."""
    last_pool = list(rng.permutation(np.array(LAST_NAMES, dtype=object)))
    off_roster = tuple(last_pool[-OFF_ROSTER_LAST_RESERVE:])
    on_roster = last_pool[:-OFF_ROSTER_LAST_RESERVE]
    names: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    while len(names) < n:
        pair = (
            FIRST_NAMES[int(rng.integers(len(FIRST_NAMES)))],
            on_roster[int(rng.integers(len(on_roster)))],
        )
        if pair not in seen:
            seen.add(pair)
            names.append(pair)
    numbers = np.sort(rng.choice(np.arange(10_000, 100_000), size=n, replace=False))
    badges = rng.choice(np.arange(1_000_000), size=n, replace=False)
    roles = _roles(n, n_planners, n_inspectors, n_lines)
    order = rng.permutation(n)  # roles are not tied to employee-number order
    people = []
    for i, (first, last) in enumerate(names):
        role, line_id, shift = roles[int(order[i])]
        email = None if rng.random() < 0.03 else f"{ascii_fold(first)}.{ascii_fold(last)}@{domain}".lower()
        phone = None if rng.random() < 0.08 else _phone(rng)
        badge = f"B-{badges[i] // 100:04d}-{badges[i] % 100:02d}"
        people.append(Person(f"E-{numbers[i]}", badge, first, last, email, phone, role, line_id, shift))
    return Roster(people=tuple(people), off_roster_last_names=off_roster)
