"""CSV and Parquet drops (historian exports, public datasets): columns named by vendor field, values as text."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from data_contracts.contract import Contract, SourceMapping
from data_contracts.landed import ISSUES, LANDING_ROW, SOURCE, issues_to_json
from pipelines.adapters.errors import SourceError
from pipelines.adapters.records import FieldPlan, columns_to_landed, values_to_text

FILE_SUFFIXES = (".csv", ".parquet")

TextColumns = dict[str, np.ndarray]
BadCells = dict[str, list[tuple[int, str]]]


def read_file_drop(path: Path, contract: Contract, mapping: SourceMapping) -> pd.DataFrame:
    """One CSV or Parquet drop -> the contract's landed frame; header drift is an issue on every row."""
    location = f"{path.parent.name}/{path.name}"
    suffix = path.suffix.lower()
    if suffix == ".csv":
        columns, n_rows, bad = _read_csv(path, location)
    elif suffix == ".parquet":
        columns, n_rows, bad = _read_parquet(path, location)
    else:
        raise SourceError(location, f"unsupported file type {suffix!r}: a drop is .csv or .parquet")
    label = f"{_mapping_name(contract, mapping)}:{location}"
    return columns_to_landed(columns, n_rows, contract, mapping, label, cell_issues=bad)


def read_file_drop_table(path: Path, contract: Contract, mapping: SourceMapping) -> pa.Table | None:
    """A plain CSV drop's landed table built in Arrow: ``to_arrow(read_file_drop(...))`` without Python strings.

    None when the drop needs the general path (a Parquet drop, or a CSV Arrow's reader cannot prove plain); the
    caller then reads it with :func:`read_file_drop`. The cells, types and pandas metadata are the ones the
    frame's conversion gives, so the landed file is the same either way.
    """
    if path.suffix.lower() != ".csv":
        return None
    table = _plain_csv_table(path)
    if table is None or table.num_rows == 0:
        return None
    location = f"{path.parent.name}/{path.name}"
    plan = FieldPlan.build(contract, mapping)
    n_rows = table.num_rows
    columns: dict[str, pa.Array] = {}
    for column in contract.column_names:
        vendor = plan.vendor_of.get(column)
        if vendor in table.column_names:
            text = table.column(vendor).combine_chunks()
            # an empty CSV cell is the only null a CSV has
            columns[column] = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
        else:
            columns[column] = pa.nulls(n_rows)
    label = f"{_mapping_name(contract, mapping)}:{location}"
    issues = issues_to_json(plan.key_violations(table.column_names))
    columns[LANDING_ROW] = pa.array(np.arange(n_rows, dtype=np.int64))
    columns[SOURCE] = _repeated_text(label, n_rows)
    columns[ISSUES] = _repeated_text(issues, n_rows)
    # all-null text columns are Arrow's null type in the frame's conversion too (pandas_type "empty")
    columns = {
        name: pa.nulls(n_rows) if array.null_count == n_rows else array for name, array in columns.items()
    }
    return pa.Table.from_arrays(list(columns.values()), schema=_landed_schema(columns))


def _repeated_text(value: str, n_rows: int) -> pa.Array:
    return pa.repeat(pa.scalar(value, pa.string()), n_rows)


def _landed_schema(columns: dict[str, pa.Array]) -> pa.Schema:
    """The schema ``pa.Table.from_pandas`` gives the landed frame: taken from a one-row frame of the same kinds."""
    template = {
        name: np.array(
            [None if pa.types.is_null(a.type) else (0 if name == LANDING_ROW else "x")], dtype=object
        )
        for name, a in columns.items()
    }
    template[LANDING_ROW] = np.zeros(1, dtype=np.int64)
    schema = pa.Table.from_pandas(pd.DataFrame(template), preserve_index=False).schema
    expected = [a.type for a in columns.values()]
    if [f.type for f in schema] != expected:  # never expected: a conversion rule changed under us
        raise SourceError(LANDING_ROW, f"landed schema {schema.types} does not match the columns {expected}")
    return schema


def _mapping_name(contract: Contract, mapping: SourceMapping) -> str:
    return next((name for name, m in contract.sources.items() if m == mapping), mapping.kind.value)


def _read_csv(path: Path, location: str) -> tuple[TextColumns, int, BadCells]:
    fast = _read_plain_csv(path)
    if fast is not None:
        return fast
    return _read_csv_pandas(path, location)


def _read_plain_csv(path: Path) -> tuple[TextColumns, int, BadCells] | None:
    """Arrow's CSV reader for the common well-formed drop; None sends the file to the pandas path."""
    table = _plain_csv_table(path)
    if table is None:
        return None
    columns: TextColumns = {}
    for name in table.column_names:
        array = table.column(name)
        values = array.to_numpy(zero_copy_only=False).astype(object, copy=False)
        empty = pc.equal(array, "").to_numpy(zero_copy_only=False)
        if empty.any():
            values = values.copy()
            values[empty] = None  # an empty CSV cell is the only null a CSV has
        columns[name] = values
    return columns, table.num_rows, {}


def _plain_csv_table(path: Path) -> pa.Table | None:
    """The CSV as an Arrow table of text (empty cells as ""), or None when only the pandas path reads it right.

    Only taken when the result is provably the pandas one: a header of distinct non-empty names (pandas renames
    blank and repeated ones) and every row as wide as the header (Arrow raises otherwise). Anything Arrow
    refuses (bad UTF-8, ragged rows, an empty file) falls back, so the pandas path keeps the error messages.
    """
    names = _header_names(path)
    if not names or "" in names or len(set(names)) != len(names):
        return None
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(encoding="utf8"),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError):
        return None
    if table.column_names != names:
        return None
    return table


def _header_names(path: Path) -> list[str] | None:
    """The header row's field names as pandas reads them (BOM dropped), or None when it cannot be read."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return next(csv.reader(handle), None)
    except (UnicodeDecodeError, csv.Error):
        return None


def _read_csv_pandas(path: Path, location: str) -> tuple[TextColumns, int, BadCells]:
    # utf-8-sig: still UTF-8 only, but a spreadsheet's byte-order mark must not rename the first header
    try:
        with warnings.catch_warnings():
            # index_col=False: a row longer than the header must not silently become an index and shift the
            # columns; pandas only warns about it, so the warning is the error
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", index_col=False)
    except pd.errors.ParserWarning:
        raise SourceError(location, "not well-formed CSV: a row has more fields than the header") from None
    except UnicodeDecodeError as err:  # pandas decodes in blocks: its byte offset would mislead
        raise SourceError(location, f"not UTF-8 text ({err.reason})") from None
    except pd.errors.EmptyDataError:
        raise SourceError(location, "empty file: a CSV drop starts with a header row") from None
    except pd.errors.ParserError as err:
        raise SourceError(location, f"not well-formed CSV: {err}") from None
    columns: TextColumns = {}
    for name in frame.columns:
        values = frame[name].to_numpy(dtype=object)
        values[values == ""] = None  # an empty CSV cell is the only null a CSV has
        columns[str(name)] = values
    return columns, len(frame), {}


def _read_parquet(path: Path, location: str) -> tuple[TextColumns, int, BadCells]:
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise SourceError(location, f"not a readable Parquet file: {err}") from None
    columns: TextColumns = {}
    bad: BadCells = {}
    for name in table.column_names:
        text, unreadable = arrow_to_text(table.column(name).combine_chunks())
        columns[name] = text
        if unreadable:
            bad[name] = unreadable
    return columns, table.num_rows, bad


def arrow_to_text(array: pa.Array) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """A typed Arrow column -> text as JSON values would give it: 12, 12.5, true, ISO timestamps and dates."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        return arrow_to_text(array.dictionary_decode())
    nulls = array.is_null().to_numpy(zero_copy_only=False)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _with_nulls(array.to_numpy(zero_copy_only=False), nulls), []
    if pa.types.is_floating(kind) and kind != pa.float64():
        # str of a numpy float32 is its shortest repr ("0.1"); as a Python float it would be 0.10000000149...
        values = array.fill_null(0).to_numpy(zero_copy_only=False)
        return _with_nulls(np.array([str(v) for v in values], dtype=object), nulls), []
    if pa.types.is_timestamp(kind) and kind.tz is None:
        return _with_nulls(_iso_timestamps(array), nulls), []
    if pa.types.is_date(kind):
        days = array.cast(pa.date32()).to_numpy(zero_copy_only=False)
        return _with_nulls(np.datetime_as_string(days, unit="D").astype(object), nulls), []
    if pa.types.is_timestamp(kind):
        stamps = array.to_pandas()
        text = np.array([None if pd.isna(ts) else ts.isoformat() for ts in stamps], dtype=object)
        return text, []
    return values_to_text(array.to_pylist())


def _iso_timestamps(array: pa.Array) -> np.ndarray:
    """Zone-less timestamps as ISO 8601, whole seconds unless a value has a fraction."""
    stamps = array.to_numpy(zero_copy_only=False)
    unit = np.datetime_data(stamps.dtype)[0]
    whole = stamps.astype("datetime64[s]")
    has_fraction = bool(np.any((stamps != whole) & ~np.isnat(stamps)))
    return np.datetime_as_string(stamps, unit=unit if has_fraction else "s").astype(object)


def _with_nulls(values: np.ndarray, nulls: np.ndarray) -> np.ndarray:
    out = values.astype(object, copy=False)
    if nulls.any():
        out = out.copy()
        out[nulls] = None
    return out


def find_file_drop(batch_dir: Path, entity: str) -> Path | None:
    """The ``<entity>.csv`` or ``<entity>.parquet`` in a folder, if one (and only one) is there."""
    found = [
        batch_dir / f"{entity}{suffix}"
        for suffix in FILE_SUFFIXES
        if (batch_dir / f"{entity}{suffix}").is_file()
    ]
    if len(found) > 1:
        raise SourceError(f"{batch_dir.name}/{entity}", "both a .csv and a .parquet drop for one entity")
    return found[0] if found else None
