"""frame_content_hash with the frame's Arrow table at hand hashes exactly as it does from the frame alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from data_contracts.anonymization.attestation import frame_content_hash


def mixed_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "text": ["a", None, "ü", ""],
            "row": np.arange(4, dtype=np.int64),
            "flag": [True, False, True, True],
            "x": [1.5, np.nan, 0.0, -2.0],
            "n": pd.array([1, None, 3, 4], dtype="Int64"),
            "ts": pd.to_datetime(["2025-03-01", None, "2025-03-02", "2025-03-03"]),
        }
    )


def test_hash_from_table_equals_hash_from_frame() -> None:
    frame = mixed_frame()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    assert frame_content_hash(frame, table) == frame_content_hash(frame)


def test_hash_from_parquet_table_equals_hash_of_the_frame_read(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    mixed_frame().to_parquet(path, index=False)
    table = pq.read_table(path)
    frame = pd.read_parquet(path)
    assert frame_content_hash(frame, table) == frame_content_hash(frame)


def test_a_table_of_other_columns_or_rows_is_ignored() -> None:
    frame = mixed_frame()
    renamed = pa.Table.from_pandas(frame.rename(columns={"text": "t"}), preserve_index=False)
    shorter = pa.Table.from_pandas(frame.assign(text=["b", "c", "d", "e"]).head(3), preserve_index=False)
    assert frame_content_hash(frame, renamed) == frame_content_hash(frame)
    assert frame_content_hash(frame, shorter) == frame_content_hash(frame)


def test_output_table_reuses_untouched_columns_and_equals_a_fresh_conversion(tmp_path: Path) -> None:
    from data_contracts.anonymization.anonymizer import _output_table

    landed = pd.DataFrame(
        {
            "who": ["E1", None, "E2"],
            "text": ["a", "b", None],
            "_landing_row": np.arange(3),
            "_issues": ["[]"] * 3,
        }
    )
    path = tmp_path / "landed.parquet"
    landed.to_parquet(path, index=False)
    source = pq.read_table(path)
    out = pd.read_parquet(path)
    out["who"] = pd.Series(["p1", None, "p2"], dtype=object)
    out["_issues"] = pd.Series([None, "[]", "[]"], dtype=object)
    table = _output_table(out, ["who", "_issues"], source)
    expected = pa.Table.from_pandas(out, preserve_index=False)
    assert table.equals(expected)
    assert table.to_pandas().equals(out)
    assert frame_content_hash(out, table) == frame_content_hash(out)
