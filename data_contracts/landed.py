"""The shape every stage hands on: a canonical table as landed, before it is typed and validated.

A landed frame has every column of its contract (vendor fields already renamed), each value kept as the text
it arrived as (None where the source had no value), so nothing is lost or guessed before validation. Three
bookkeeping columns travel with the rows from the adapter to curated/quarantine:

- ``_landing_row``: 0-based position of the row in its table within the batch, in source order. Planted-defect
  reports and quarantine both name rows by it.
- ``_source``: where the row came from (mapping name and file or URL), for lineage.
- ``_issues``: JSON list of :class:`Violation` found before validation (unknown, missing or unreadable fields).
"""

from __future__ import annotations

import json

import pandas as pd
from pydantic import BaseModel, ConfigDict

LANDING_ROW = "_landing_row"
SOURCE = "_source"
ISSUES = "_issues"
BOOKKEEPING = (LANDING_ROW, SOURCE, ISSUES)


class Violation(BaseModel):
    """Why a row broke its contract: the column (None for whole-row rules), the rule, the value seen."""

    model_config = ConfigDict(frozen=True)

    column: str | None
    rule: str
    observed: str | None = None

    def describe(self) -> str:
        where = self.column or "row"
        seen = "" if self.observed is None else f" (saw {self.observed!r})"
        return f"{where}: {self.rule}{seen}"


def issues_to_json(violations: list[Violation]) -> str:
    return json.dumps([v.model_dump() for v in violations])


def issues_from_json(text: str | None) -> list[Violation]:
    if not text:
        return []
    return [Violation.model_validate(item) for item in json.loads(text)]


def empty_landed(columns: list[str]) -> pd.DataFrame:
    """A landed frame with no rows, for a table a batch did not carry."""
    frame = pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    frame[LANDING_ROW] = pd.Series(dtype="int64")
    frame[SOURCE] = pd.Series(dtype="object")
    frame[ISSUES] = pd.Series(dtype="object")
    return frame
