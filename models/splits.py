"""Time-ordered splits: train on the past, choose thresholds and calibrate on the next slice, test on the last.

Never random for time series: a forecaster may only learn from what was known before the rows it is judged on.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class TimeSplit:
    """Train, validation and test frames cut at two points in time, with the cut points for lineage."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    validation_start: pd.Timestamp
    test_start: pd.Timestamp

    def window(self, time_column: str) -> dict[str, str]:
        """The training window and cut points as ISO strings (for the evaluation report and lineage)."""
        return {
            "train_start": self.train[time_column].min().isoformat(),
            "validation_start": self.validation_start.isoformat(),
            "test_start": self.test_start.isoformat(),
            "test_end": self.test[time_column].max().isoformat(),
        }


def split_by_time(
    frame: pd.DataFrame,
    time_column: str,
    validation_share: float = 0.15,
    test_share: float = 0.15,
    test_start: pd.Timestamp | None = None,
) -> TimeSplit:
    """Cut a frame into train / validation / test by time (shares of the time span, or a fixed test start)."""
    if not 0 < validation_share < 1 or not 0 < test_share < 1 or validation_share + test_share >= 1:
        raise ValueError("validation_share and test_share must be in (0, 1) and sum to less than 1")
    times = pd.to_datetime(frame[time_column])
    start, end = times.min(), times.max()
    span = end - start
    test_cut = test_start if test_start is not None else start + span * (1 - test_share)
    validation_cut = start + (test_cut - start) * (1 - validation_share / (1 - test_share))
    train = frame[times < validation_cut]
    validation = frame[(times >= validation_cut) & (times < test_cut)]
    test = frame[times >= test_cut]
    if min(len(train), len(validation), len(test)) == 0:
        raise ValueError(
            f"{time_column}: a split is empty (train {len(train)}, validation {len(validation)}, "
            f"test {len(test)}); give more history"
        )
    return TimeSplit(train, validation, test, pd.Timestamp(validation_cut), pd.Timestamp(test_cut))
