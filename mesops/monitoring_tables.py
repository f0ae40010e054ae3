"""Tables of monitoring: one summary row per drift report of a model version.

The full reports (Evidently's HTML and a small JSON) are files under MESOPS_HOME/reports/drift/; a row keeps
the per-feature table too, so the history reads without them. No personal data: feature names and scores.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mesops.tables import Base


class DriftReport(Base):
    """A drift report: a version's training reference against a window of the inputs it was served."""

    __tablename__ = "drift_reports"
    __table_args__ = (
        Index("ix_drift_reports_model_version_time", "model_name", "model_version", "computed_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(120))
    model_version: Mapped[str] = mapped_column(String(40))
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    window_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reference_rows: Mapped[int] = mapped_column(Integer)
    current_rows: Mapped[int] = mapped_column(Integer)
    feature_count: Mapped[int] = mapped_column(Integer)
    drifted_count: Mapped[int] = mapped_column(Integer)
    share_drifted: Mapped[float] = mapped_column(Float)
    drifted_features: Mapped[list[str]] = mapped_column(JSON)
    prediction_drifted: Mapped[bool | None] = mapped_column(Boolean)
    features: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    prediction: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    html_path: Mapped[str | None] = mapped_column(String(1000))
    json_path: Mapped[str | None] = mapped_column(String(1000))
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
