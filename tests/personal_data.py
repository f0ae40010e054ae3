"""Search every output of mesops for planted personal data (names, badge ids, employee numbers, phones, e-mails)."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import pandas as pd


def planted_values(roster: pd.DataFrame, extra: Iterable[str] = ()) -> list[str]:
    """Every personal value of the roster (ids, names, full names, e-mails, phones) plus extra planted ones."""
    values: set[str] = set(extra)
    for _, person in roster.iterrows():
        for column in ("employee_no", "badge_id", "first_name", "last_name", "email", "phone"):
            if isinstance(person.get(column), str) and person[column]:
                values.add(person[column])
        values.add(f"{person['first_name']} {person['last_name']}")
    return sorted(v for v in values if len(v) >= 3)


def _pattern(values: list[str]) -> re.Pattern[str]:
    alternatives = sorted((re.escape(v) for v in values), key=len, reverse=True)
    return re.compile(r"(?<![\w])(?:" + "|".join(alternatives) + r")(?![\w])", re.IGNORECASE)


def _texts_of(path: Path) -> Iterable[str]:
    """The text a file holds, decoded the way its format stores it (Parquet and SQLite are not plain bytes)."""
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
        yield frame.to_csv(index=False)
        return
    raw = path.read_bytes()
    if raw.startswith(b"SQLite format 3"):
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            tables = [r[0] for r in conn.execute("select name from sqlite_master where type='table'")]
            for table in tables:
                for row in conn.execute(f'select * from "{table}"'):
                    yield " ".join(str(v) for v in row if v is not None)
    yield raw.decode("utf-8", errors="ignore")


def find_personal_data(root: Path, values: list[str], skip: Iterable[Path] = ()) -> list[tuple[str, str]]:
    """(file, value) for every planted value found in any file under root, except the skipped folders."""
    pattern = _pattern(values)
    skipped = [s.resolve() for s in skip]
    hits: list[tuple[str, str]] = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or any(path.resolve().is_relative_to(s) for s in skipped):
            continue
        for text in _texts_of(path):
            match = pattern.search(text)
            if match:
                hits.append((str(path.relative_to(root)), match.group(0)))
                break
    return hits


def find_in_text(text: str, values: list[str]) -> list[str]:
    """Planted values found in a text (CLI output, logs)."""
    return sorted({m.group(0) for m in _pattern(values).finditer(text)})
