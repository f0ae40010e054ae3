"""`mesops up` end to end on the local PostgreSQL: two replicas, Dagster, one prediction log, a clean stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from mesops import stack
from mesops.settings import get_settings
from mesops.stack import (
    Child,
    ProductionProfile,
    StackConfig,
    StackError,
    build_components,
    drop_databases,
    ensure_databases,
    production_profile,
    read_state,
)
from pipelines.runner import build_simulated_installation
from serving.server import REPO_ROOT, descendants, free_ports

KEY = "test-key-0123456789abcdef"


@pytest.fixture
def profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProductionProfile]:
    """A production profile on fresh databases of the local server (dropped afterwards), as the environment."""
    from tests.conftest import ensure_postgres

    ensure_postgres()
    for name in ("MESOPS_DATABASE_URL", "MESOPS_MLFLOW_TRACKING_URI", "MESOPS_DAGSTER_POSTGRES_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MESOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MESOPS_PSEUDONYM_KEY", KEY)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home" / "dagster"))  # restored after the test
    chosen = production_profile(get_settings(), database_prefix=f"mesops_up_{uuid.uuid4().hex[:8]}")
    assert len(ensure_databases(chosen)) == 3
    assert ensure_databases(chosen) == []  # present now: nothing created twice
    for name, value in chosen.environment().items():
        monkeypatch.setenv(name, value)
    try:
        yield chosen
    finally:
        drop_databases(chosen)


def test_profile_keeps_explicit_urls_and_refuses_sqlite(settings) -> None:  # type: ignore[no-untyped-def]
    explicit = "postgresql+psycopg2://mesops@db.plant.local:5432/platform"
    chosen = production_profile(settings.model_copy(update={"database_url": explicit}))
    assert chosen.platform_url == explicit
    assert make_url(chosen.mlflow_url).database == "mesops_mlflow"
    assert make_url(chosen.dagster_url).database == "mesops_dagster"
    with pytest.raises(StackError, match="MESOPS_DATABASE_URL: the production stack runs on PostgreSQL"):
        production_profile(settings.model_copy(update={"database_url": "sqlite:///x.db"}))
    with pytest.raises(StackError, match="--database-prefix"):
        production_profile(settings, database_prefix="Bad-Name")


def test_unreachable_server_is_a_clear_error(settings) -> None:  # type: ignore[no-untyped-def]
    chosen = production_profile(settings, postgres_url="postgresql+psycopg2://nobody@127.0.0.1:1/postgres")
    with pytest.raises(StackError, match=r"cannot reach PostgreSQL at .*127\.0\.0\.1:1"):
        ensure_databases(chosen)


def test_components_follow_the_config(settings, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    chosen = production_profile(settings)
    names = [c.name for c in build_components(chosen, settings, StackConfig(replicas=3, first_port=4100))]
    assert names == ["service:4100", "service:4101", "service:4102", "dagster-daemon", "dagster-webserver"]
    plain = build_components(chosen, settings, StackConfig(replicas=1, dagster=False))
    assert [c.name for c in plain] == ["service:3000"]
    monkeypatch.setattr(stack, "bridge_available", lambda: False)
    with pytest.raises(StackError, match="--bridge-workers"):
        build_components(chosen, settings, StackConfig(bridge_workers=2))
    monkeypatch.setattr(stack, "bridge_available", lambda: True)
    bridged = build_components(chosen, settings, StackConfig(replicas=1, dagster=False, bridge_workers=2))
    assert [c.name for c in bridged] == ["service:3000", "bridge:1", "bridge:2"]
    with pytest.raises(StackError, match="--replicas"):
        build_components(chosen, settings, StackConfig(replicas=0))


def test_children_carry_the_profile_environment(settings) -> None:  # type: ignore[no-untyped-def]
    chosen = production_profile(settings, database_prefix="plant7")
    [daemon] = [c for c in build_components(chosen, settings, StackConfig()) if c.name == "dagster-daemon"]
    assert isinstance(daemon, Child)
    assert daemon.env["MESOPS_DATABASE_URL"].endswith("/plant7")
    assert daemon.env["MESOPS_DAGSTER_POSTGRES_URL"].endswith("/plant7_dagster")
    assert daemon.env["MESOPS_MLFLOW_TRACKING_URI"].endswith("/plant7_mlflow")
    assert daemon.env["DAGSTER_HOME"] == str(settings.dagster_home)


def test_stop_ends_a_child_and_the_orphans_of_its_own_sessions(tmp_path: Path) -> None:
    # a child that starts a grandchild in a session of its own and ignores SIGTERM there, as BentoML's workers do
    script = (
        "import subprocess, sys, time; "
        "subprocess.Popen([sys.executable, '-c', 'import signal, time; "
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)'], start_new_session=True); "
        "time.sleep(600)"
    )
    child = Child("sleeper", [sys.executable, "-c", script], dict(os.environ), tmp_path / "sleeper.log")
    child.kill_after_s = 1.0
    child.start()
    assert child.pid() is not None
    deadline = time.monotonic() + 20
    while not descendants(child.pid()) and time.monotonic() < deadline:
        time.sleep(0.1)
    below = descendants(child.pid())
    assert below, "the grandchild did not start"
    assert child.status() == "ready"
    child.stop()
    assert child.status().startswith("exited")
    assert [pid for pid in below if _alive(pid)] == []


def _wait_for_state(home: Path, up: subprocess.Popen[bytes], timeout_s: float) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert up.poll() is None, f"mesops up exited with {up.returncode}"
        state = read_state(home)
        if state is not None:
            return state
        time.sleep(0.5)
    raise AssertionError("mesops up wrote no state file")


def _rows(url: str, query: str) -> list[tuple]:  # type: ignore[type-arg]
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(query))]
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.postgres
def test_up_runs_two_replicas_on_postgres_and_stops_clean(profile: ProductionProfile, tmp_path: Path) -> None:
    from governance.api_keys import create_key

    build_simulated_installation(get_settings())
    key = create_key(profile.platform_url, "integration", "stack test").key
    first = free_ports(2)  # the two replicas
    dagster_port = free_ports(1, avoid=(first, first + 1))
    ports = [first, first + 1]
    command = [sys.executable, "-m", "mesops.up_cli", "up", "--replicas", "2", "--port", str(first)]
    command += ["--dagster-port", str(dagster_port), "--check-every-s", "1"]
    command += ["--database-prefix", make_url(profile.platform_url).database or ""]
    out = (tmp_path / "up.out").open("wb")
    up = subprocess.Popen(command, cwd=REPO_ROOT, env=dict(os.environ), stdout=out, stderr=subprocess.STDOUT)
    below: list[int] = []
    try:
        _wait_for_state(profile.home, up, 120)
        deadline = time.monotonic() + 300
        urls = [f"http://127.0.0.1:{p}/readyz" for p in ports] + [
            f"http://127.0.0.1:{dagster_port}/server_info"
        ]
        while not all(_answers(u) for u in urls):
            assert up.poll() is None, (tmp_path / "up.out").read_text()
            assert time.monotonic() < deadline, "the stack was not ready within 300 s"
            time.sleep(1)

        request_ids = []
        for port in ports:
            answer = httpx.post(
                f"http://127.0.0.1:{port}/v1/failure/risk",
                json={"machine_id": "M-01"},
                headers={"X-API-Key": key},
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
            request_ids.append(answer.json()["request_id"])
        assert len(set(request_ids)) == 2

        logged: list[tuple] = []  # type: ignore[type-arg]
        for _ in range(40):  # the log writer flushes every 0.2 s by default
            logged = _rows(profile.platform_url, "SELECT request_id FROM prediction_log")
            if {r for (r,) in logged} >= set(request_ids):
                break
            time.sleep(0.25)
        assert {r for (r,) in logged} >= set(request_ids)

        models = {name for (name,) in _rows(profile.mlflow_url, "SELECT name FROM registered_models")}
        assert models == {"mesops-failure", "mesops-yield", "mesops-consumption"}
        # the versions' artifacts are in the shared folder, not in the embedded default under MESOPS_HOME/mlflow
        assert len(list(Path(profile.artifact_location).rglob("MLmodel"))) >= 3
        assert not (profile.home / "mlflow").exists()
        runs = _rows(profile.dagster_url, "SELECT count(*) FROM runs")
        assert runs[0][0] >= 2  # the ingest and train runs of this test, in the Dagster PostgreSQL storage

        below = descendants(up.pid)
        assert len(below) >= 4  # two replicas (with their workers) and the two Dagster processes
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=120) == 0, (tmp_path / "up.out").read_text()
        survivors = [pid for pid in below if _alive(pid)]
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        out.close()
        for pid in below:  # never leave a process behind, even when an assertion failed
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert survivors == [], f"processes left behind: {survivors}"
    assert read_state(profile.home) is None
    assert "the stack is stopped" in (tmp_path / "up.out").read_text()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_cli_errors_are_one_line(settings, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from mesops.up_cli import app

    runner = CliRunner()
    for command in (["stack"], ["down"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2 and "no stack is running" in result.output, result.output
    monkeypatch.setenv("MESOPS_DATABASE_URL", "sqlite:///elsewhere.db")
    result = runner.invoke(app, ["up"])
    assert result.exit_code == 2
    assert "MESOPS_DATABASE_URL: the production stack runs on PostgreSQL" in result.output
    assert "Traceback" not in result.output
