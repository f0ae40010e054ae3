"""The one error a source adapter raises for an extract it cannot read as a whole."""

from __future__ import annotations


class SourceError(ValueError):
    """An extract (file, page or URL) that cannot be read: names where, the field if any, and the rule broken.

    Row-level problems (an unknown or missing field, an unreadable value) never raise: they travel with the row
    in ``_issues``. A SourceError means the whole file, page chain or response is unusable.
    """

    def __init__(
        self, location: str, rule: str | None = None, *, field: str | None = None, status: int | None = None
    ):
        """``SourceError(location, rule, field=...)``; a lone argument is taken as the whole message."""
        self.location = location
        self.rule = None if rule is None else " ".join(rule.split())  # one line, whatever the cause's text
        self.field = field
        self.status = status
        where = location if field is None else f"{location}: field {field!r}"
        super().__init__(where if self.rule is None else f"{where}: {self.rule}")


class EntitySetNotFound(SourceError):
    """The endpoint answered 404 to the first request for an entity set: it does not have that set."""
