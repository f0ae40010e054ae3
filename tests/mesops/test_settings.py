"""The settings object: environment prefix, derived paths, the pseudonym key and telemetry switches."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from mesops.settings import TELEMETRY_OFF, get_settings


def test_env_prefix_and_derived_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESOPS_HOME", str(tmp_path / "h"))
    monkeypatch.delenv("MESOPS_DATABASE_URL", raising=False)
    settings = get_settings()
    assert settings.home == (tmp_path / "h").resolve()
    assert settings.landing_dir == settings.home / "landing"
    assert settings.resolved_database_url == f"sqlite:///{settings.home / 'platform.db'}"
    assert not settings.home.exists(), "building settings must not create folders"


def test_database_url_from_env(settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESOPS_DATABASE_URL", "postgresql+psycopg2://u@h/db")
    assert get_settings().resolved_database_url == "postgresql+psycopg2://u@h/db"


def test_invalid_threshold_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESOPS_MAX_QUARANTINE_SHARE", "1.5")
    with pytest.raises(ValidationError, match="max_quarantine_share"):
        get_settings()


def test_pseudonym_key_file_created_once_outside_data_zones(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MESOPS_HOME", str(tmp_path / "h"))
    monkeypatch.delenv("MESOPS_PSEUDONYM_KEY", raising=False)
    first = get_settings().pseudonym_secret
    second = get_settings().pseudonym_secret
    assert first == second and len(first) >= 32
    key_file = tmp_path / "h" / "secrets" / "pseudonym.key"
    assert key_file.exists() and oct(key_file.stat().st_mode & 0o777) == "0o600"


def test_empty_pseudonym_key_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MESOPS_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("MESOPS_PSEUDONYM_KEY", "")
    with pytest.raises(ValueError, match="MESOPS_PSEUDONYM_KEY"):
        _ = get_settings().pseudonym_secret


def test_telemetry_switched_off_by_the_project(settings) -> None:
    for name, value in TELEMETRY_OFF.items():
        assert os.environ[name] == value
