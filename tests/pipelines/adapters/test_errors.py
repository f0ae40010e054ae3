"""SourceError: one line naming where, the field and the rule."""

from __future__ import annotations

from pipelines.adapters.errors import SourceError


def test_message_names_location_field_and_rule_on_one_line() -> None:
    error = SourceError("b1/Orders-0002.json", "invalid JSON:\n  line 3", field="value")
    assert str(error) == "b1/Orders-0002.json: field 'value': invalid JSON: line 3"
    assert (error.location, error.field, error.rule) == (
        "b1/Orders-0002.json",
        "value",
        "invalid JSON: line 3",
    )
    assert isinstance(error, ValueError)


def test_a_lone_argument_is_the_whole_message() -> None:
    assert str(SourceError("x.csv: no such file")) == "x.csv: no such file"
