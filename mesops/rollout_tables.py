"""Tables of the rollout: which model version each alias points at (the serialization point of promotions)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from mesops.tables import Base


class ModelAlias(Base):
    """Where one alias of one registered model points, and where it pointed before (for one-step rollback)."""

    __tablename__ = "model_aliases"

    model_name: Mapped[str] = mapped_column(String(120), primary_key=True)
    alias: Mapped[str] = mapped_column(String(40), primary_key=True)
    version: Mapped[str] = mapped_column(String(40))
    previous_version: Mapped[str | None] = mapped_column(String(40))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
