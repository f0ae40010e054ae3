"""Shared fixtures: an isolated MESOPS_HOME per test, and the local PostgreSQL server for marked tests."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from mesops.settings import Settings, get_settings

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATASETS = REPO_ROOT.parent / "shared" / "datasets"
POSTGRES_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings on a fresh MESOPS_HOME under tmp_path, with a fixed pseudonym key."""
    monkeypatch.setenv("MESOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MESOPS_PSEUDONYM_KEY", "test-key-0123456789abcdef")
    for name in ("MESOPS_DATABASE_URL", "MESOPS_DAGSTER_POSTGRES_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    return get_settings()


def _postgres_up() -> bool:
    try:
        engine = create_engine(POSTGRES_ADMIN_URL)
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return True
    except Exception:  # any connection failure means "not up yet"
        return False


def ensure_postgres() -> None:
    """Start the machine's PostgreSQL cluster if it is down (the command the machine documents)."""
    if _postgres_up():
        return
    if shutil.which("pg_ctlcluster") is None:
        pytest.fail("PostgreSQL is down and pg_ctlcluster is not installed: cannot start it")
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=False)
    for _ in range(60):
        if _postgres_up():
            return
        time.sleep(0.5)
    pytest.fail("PostgreSQL did not come up on 127.0.0.1:5432 within 30 s")


@pytest.fixture
def make_postgres_database() -> Iterator[Callable[[], str]]:
    """Creates fresh, empty PostgreSQL databases on demand (their SQLAlchemy URLs); drops them afterwards."""
    ensure_postgres()
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    created: list[str] = []

    def make() -> str:
        name = f"mesops_test_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"

    try:
        yield make
    finally:
        with admin.connect() as conn:
            for name in created:
                conn.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                    {"n": name},
                )
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture
def postgres_database(make_postgres_database: Callable[[], str]) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    return make_postgres_database()
