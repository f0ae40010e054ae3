"""The `mesops` CLI as a user runs it: the demo prints per-table counts; errors are one clear line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import REPO_ROOT
from tests.personal_data import find_in_text, find_personal_data, planted_values


def _mesops(settings, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = {**os.environ, "MESOPS_HOME": str(settings.home), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "mesops.cli", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_help_lists_every_command(settings) -> None:
    result = _mesops(settings, "--help")
    assert result.returncode == 0
    for command in (
        *("demo", "simulate", "land", "ingest", "status", "quarantine", "contracts", "db", "ui"),
        *("serve", "keys", "rollout", "models", "audit"),
    ):
        assert f" {command} " in result.stdout


def test_unknown_table_is_one_line_error(settings) -> None:
    result = _mesops(settings, "contracts", "show", "nope")
    assert result.returncode == 2
    assert "no contract of that name" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 2


def test_contracts_check_passes_on_the_shipped_contracts(settings) -> None:
    result = _mesops(settings, "contracts", "check")
    assert result.returncode == 0, result.stderr


def test_contracts_check_names_an_unbumped_breaking_change(settings, tmp_path) -> None:
    import shutil

    contracts = tmp_path / "contracts"
    shutil.copytree(REPO_ROOT / "data_contracts" / "contracts", contracts)
    orders = contracts / "production_orders.yaml"
    orders.write_text(
        orders.read_text().replace("{name: planned_qty, type: integer", "{name: planned_qty, type: float")
    )
    env = {**os.environ, "MESOPS_HOME": str(settings.home), "MESOPS_CONTRACTS_DIR": str(contracts)}
    result = subprocess.run(
        [sys.executable, "-m", "mesops.cli", "contracts", "check"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "production_orders" in result.stderr and "planned_qty" in result.stderr


def test_bad_setting_names_the_variable(settings) -> None:
    env_result = subprocess.run(
        [sys.executable, "-m", "mesops.cli", "status"],
        cwd=REPO_ROOT,
        env={**os.environ, "MESOPS_HOME": str(settings.home), "MESOPS_MAX_QUARANTINE_SHARE": "2"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert env_result.returncode == 2
    assert "MESOPS_MAX_QUARANTINE_SHARE" in env_result.stderr and "Traceback" not in env_result.stderr


@pytest.mark.slow
def test_demo_prints_counts_and_leaks_no_personal_data(settings) -> None:
    result = _mesops(settings, "demo", "--days", "90", "--defect-rate", "0.02", "--no-real-datasets")
    assert result.returncode == 0, result.stderr[-3000:]
    for table in ("production_orders", "sensor_readings", "shift_notes", "machine_events"):
        assert table in result.stdout
    assert "quarantined" in result.stdout
    landed_roster = list((settings.landing_dir).rglob("Personnel-*.json"))
    assert landed_roster, "the demo lands an Opcenter roster"
    records = [r for page in landed_roster for r in json.loads(page.read_text())["value"]]
    roster = pd.DataFrame(records).rename(
        columns={
            "NId": "employee_no",
            "BadgeId": "badge_id",
            "FirstName": "first_name",
            "LastName": "last_name",
            "Email": "email",
            "Phone": "phone",
        }
    )
    values = planted_values(roster)
    assert find_in_text(result.stdout + result.stderr, values) == []
    assert {p.name for p in settings.cache_dir.iterdir()} <= {"spacy-blank"}  # library files only
    assert find_personal_data(settings.home, values, skip=[settings.landing_dir, settings.cache_dir]) == []
    status = _mesops(settings, "status")
    assert status.returncode == 0 and "sensor_readings" in status.stdout
    # the main job trained, registered and crowned the three forecasters, audited
    listed = _mesops(settings, "models", "list")
    assert listed.returncode == 0
    for name in ("mesops-failure", "mesops-yield", "mesops-consumption"):
        assert name in listed.stdout
    assert listed.stdout.count("champion") == 3
    lineage = _mesops(settings, "models", "lineage", "yield", "champion")
    assert lineage.returncode == 0
    assert "production_orders@1.0.0" in lineage.stdout and "anonymization attestation" in lineage.stdout
    assert "promote" in lineage.stdout
    assert _mesops(settings, "audit", "verify").returncode == 0
    refused = _mesops(settings, "models", "promote", "failure", "7", "--actor", "ana", "--reason", "try")
    assert refused.returncode == 2 and "7" in refused.stderr and "Traceback" not in refused.stderr
    rollback = _mesops(settings, "models", "rollback", "failure", "--actor", "ana", "--reason", "no previous")
    assert rollback.returncode == 2 and "previous" in rollback.stderr
    for output in (listed.stdout, lineage.stdout):
        assert find_in_text(output, values) == []


def test_audit_verify_names_the_tampered_entry(settings) -> None:
    from sqlalchemy import text

    from governance import audit
    from mesops import database

    url = settings.resolved_database_url
    database.upgrade(url)
    for n in range(3):
        audit.append(
            url,
            audit.AuditEvent(
                actor="ci",
                actor_role="system",
                action="register",
                model_name="mesops-yield",
                model_version=str(n),
                reason="test",
            ),
        )
    ok = _mesops(settings, "audit", "verify")
    assert ok.returncode == 0 and "3 entries" in ok.stdout
    with database.get_engine(url).begin() as conn:
        conn.execute(text("UPDATE audit_log SET model_version = '9' WHERE seq = 2"))
    bad = _mesops(settings, "audit", "verify")
    assert bad.returncode == 2
    assert "audit entry 2" in bad.stderr and "edited" in bad.stderr
