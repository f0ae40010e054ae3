"""The Dagster instance mesops runs on: DAGSTER_HOME under MESOPS_HOME, SQLite or PostgreSQL storage."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mesops.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent


def prepare_dagster_home(settings: Settings) -> Path:
    """Point DAGSTER_HOME at MESOPS_HOME/dagster with the instance config for the configured storage."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    template = "dagster.postgres.yaml" if settings.dagster_postgres_url else "dagster.yaml"
    shutil.copyfile(REPO_ROOT / template, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    if settings.dagster_postgres_url:
        os.environ["MESOPS_DAGSTER_POSTGRES_URL"] = settings.dagster_postgres_url
    return home
