"""Turn landed text into typed columns, one :class:`ColumnType` at a time, and say which values did not fit.

Every function here is vectorized: a column of a million values is parsed by pandas/pyarrow in C, and the
values that do not fit are found by comparing nulls before and after parsing, never by looping over rows.

Typed representations (what the curated zone stores):

- ``integer``   -> pandas ``Int64`` (nullable). "12", "12.0" and "1e3" fit; "12.5", "abc" and "" do not.
- ``float``     -> ``float64``. Anything :func:`pandas.to_numeric` reads fits if it is finite ("nan" and "inf"
  do not fit: a missing value must arrive as a null, not as a spelled-out NaN).
- ``timestamp`` -> ``datetime64[ns]``, naive plant-local time. ISO 8601 unless the source mapping gives a
  ``timestamp_format``; a value carrying a zone (``Z``, ``+02:00``) does not fit.
- ``date``      -> ``datetime64[ns]`` normalized to midnight (not python ``date`` objects: a datetime64 column
  stays vectorized in row rules and comparisons, and Parquet keeps it typed). Only ``YYYY-MM-DD`` fits.
- ``boolean``   -> pandas ``boolean``. true/false, 1/0, yes/no, t/f, y/n in any case fit.
- ``string``    -> ``object`` holding ``str`` (None for nulls); every value fits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from data_contracts.contract import ColumnType

ISO_SECONDS = "%Y-%m-%dT%H:%M:%S"
ISO_DATE = "%Y-%m-%d"
TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0"})
# A zone designator after the time of an ISO 8601 timestamp: Z, +hh, +hhmm or +hh:mm (a date's "-01" is not).
ZONE_SUFFIX = r"\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$"


@dataclass(frozen=True)
class Coerced:
    """One column parsed: its text (None for nulls), typed values, and the present values that did not fit."""

    text: pd.Series
    values: pd.Series
    failed: np.ndarray  # bool, one per row


def text_and_presence(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """The column as ``object`` text with None for every kind of null, and the mask of present values."""
    text, present, _ = text_presence_arrow(series)
    return text, present


def text_presence_arrow(
    series: pd.Series, source: pa.Array | None = None
) -> tuple[pd.Series, np.ndarray, pa.StringArray | None]:
    """:func:`text_and_presence` plus the text as an Arrow array when the column is already all text.

    The Arrow array comes from the one conversion that also gives the null mask (cheaper than pandas' isna on
    Python objects), and the number parsers reuse it instead of converting the column again. ``source``: the
    Arrow string array the object column was converted from (``to_pandas`` of it), which saves that conversion.
    """
    if source is not None and pa.types.is_string(source.type) and len(source) == len(series):
        # to_pandas of an Arrow string array holds only str and None: it is all text by construction
        present = source.is_valid().to_numpy(zero_copy_only=False)
        return (series if present.all() else series.where(present, None)), present, source
    arrow = _arrow_text(series)
    if arrow is None:
        return *_text_and_presence(series), None
    present = arrow.is_valid().to_numpy(zero_copy_only=False)
    if not all_text(series, present):  # e.g. bytes, which Arrow would take as text: the general path
        return *_text_and_presence(series), None
    return (series if present.all() else series.where(present, None)), present, arrow


def _arrow_text(series: pd.Series) -> pa.StringArray | None:
    if series.dtype != object:
        return None
    try:
        return pa.array(series.to_numpy(), type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None


def _text_and_presence(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    present = series.notna().to_numpy()
    text = series
    if series.dtype != object or not all_text(series, present):
        text = series.astype(object).where(present, None).map(str, na_action="ignore")
    return (text if present.all() else text.where(present, None)), present


def as_text(series: pd.Series) -> pd.Series:
    """The column as ``object`` text with None for every kind of null (None, NaN, pd.NA, NaT)."""
    return text_and_presence(series)[0]


def all_text(series: pd.Series, present: np.ndarray) -> bool:
    """True when every present value of an object column is already a ``str``."""
    values = series.to_numpy()[present] if not present.all() else series.to_numpy()
    return bool(pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"))


def coerce_column(
    series: pd.Series,
    column_type: ColumnType,
    timestamp_format: str | None = None,
    source: pa.Array | None = None,
) -> Coerced:
    """Parse one landed column into its contract type; ``failed`` marks present values that do not fit.

    ``source``: the Arrow string array ``series`` was made from, if at hand (see :func:`text_presence_arrow`).
    """
    if source is not None and series.dtype != object:
        source = None
    text, present, arrow = text_presence_arrow(series, source)
    if column_type == ColumnType.STRING:
        return Coerced(text, text, np.zeros(len(text), dtype=bool))
    parser = {
        ColumnType.INTEGER: lambda s: to_integer(s, arrow),
        ColumnType.FLOAT: lambda s: to_float(s, arrow),
        ColumnType.TIMESTAMP: lambda s: to_timestamp(s, timestamp_format),
        ColumnType.DATE: to_date,
        ColumnType.BOOLEAN: to_boolean,
    }[column_type]
    values = parser(text)
    return Coerced(text, values, present & values.isna().to_numpy())


def parse_numbers(text: pd.Series, arrow: pa.StringArray | None = None) -> pd.Series:
    """float64 of the text, NaN where it is not a finite number (pyarrow fast path, pandas for bad columns).

    ``arrow``: the same text as an Arrow array, if at hand (saves converting the Python strings again).
    """
    try:
        source = arrow if arrow is not None else pa.array(text, type=pa.string(), from_pandas=True)
        arrow = pc.cast(source, pa.float64())
        numbers = pd.Series(arrow.to_numpy(zero_copy_only=False), index=text.index, dtype="float64")
    except pa.ArrowInvalid:
        # Some value is not a plain number: pandas' parser marks exactly those as NaN.
        numbers = pd.to_numeric(text, errors="coerce").astype("float64")
    return numbers.where(np.isfinite(numbers.to_numpy()))


def to_float(text: pd.Series, arrow: pa.StringArray | None = None) -> pd.Series:
    """float64; NaN where the text is missing or not a finite number (``arrow``: the text in Arrow, optional)."""
    return parse_numbers(text, arrow)


def to_integer(text: pd.Series, arrow: pa.StringArray | None = None) -> pd.Series:
    """Int64; NA where the text is missing, not a number, not whole, or out of int64 range."""
    exact = plain_integers(text, arrow)
    if exact is not None:
        return exact
    numbers = parse_numbers(text, arrow)
    raw = numbers.to_numpy()
    whole = (np.floor(raw) == raw) & (np.abs(raw) < 2.0**63)
    return numbers.where(whole).astype("Int64")


def plain_integers(text: pd.Series, arrow: pa.StringArray | None = None) -> pd.Series | None:
    """Int64 when every present value is plain digits (exact beyond 2**53), else None for the general path."""
    try:
        source = arrow if arrow is not None else pa.array(text, type=pa.string(), from_pandas=True)
        arrow = pc.cast(source, pa.int64())
    except pa.ArrowInvalid:
        return None
    typed = arrow.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    return pd.Series(typed.array, index=text.index)


def to_timestamp(text: pd.Series, timestamp_format: str | None = None) -> pd.Series:
    """datetime64[ns] naive; NaT where the text is missing, unreadable or carries a zone."""
    if timestamp_format is not None:
        parsed = pd.to_datetime(text, format=timestamp_format, errors="coerce")
        if isinstance(parsed.dtype, pd.DatetimeTZDtype):
            raise ValueError(
                f"timestamp_format {timestamp_format!r}: must not carry a zone (%z): plant local time"
            )
        return parsed.astype("datetime64[ns]")
    # Fast path: the exact shape the adapters write; only the rest goes through the general ISO parser.
    parsed = pd.to_datetime(text, format=ISO_SECONDS, errors="coerce").astype("datetime64[ns]")
    retry = (parsed.isna() & text.notna()).to_numpy()
    if retry.any():
        parsed.loc[retry] = iso_without_zone(text[retry])
    return parsed


def iso_without_zone(text: pd.Series) -> pd.Series:
    """General ISO 8601 parse of a few values; NaT for values with a zone or that are not ISO 8601."""
    zoned = text.str.strip().str.contains(ZONE_SUFFIX, regex=True).fillna(False).astype(bool)
    naive = text.where(~zoned)
    return pd.to_datetime(naive, format="ISO8601", errors="coerce").astype("datetime64[ns]")


def to_date(text: pd.Series) -> pd.Series:
    """datetime64[ns] at midnight; NaT where the text is missing or not ``YYYY-MM-DD``."""
    return pd.to_datetime(text, format=ISO_DATE, errors="coerce").astype("datetime64[ns]")


def to_boolean(text: pd.Series) -> pd.Series:
    """pandas ``boolean``; NA where the text is missing or not a recognised truth word."""
    words = text.str.strip().str.lower()
    out = pd.Series(pd.NA, index=text.index, dtype="boolean")
    out[words.isin(TRUE_WORDS).to_numpy()] = True
    out[words.isin(FALSE_WORDS).to_numpy()] = False
    return out


def typed_literal(value: str, column_type: ColumnType) -> object:
    """One contract literal (an ``allowed`` entry) in the column's typed form; ValueError if it does not fit."""
    coerced = coerce_column(pd.Series([value], dtype=object), column_type)
    if coerced.failed[0] or coerced.values.isna().iloc[0]:
        raise ValueError(f"{value!r} is not a {column_type.value}")
    typed = coerced.values.iloc[0]
    return typed.item() if isinstance(typed, np.generic) else typed
