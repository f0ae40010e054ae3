"""PostgreSQL restarts under load: requests fail fast with a clear 503 (or succeed), the service recovers by
itself, and every answered request has exactly one prediction-log row."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, insert, select, text

from governance.api_keys import create_key
from mesops import database
from mesops.rollout_tables import ModelAlias
from mesops.settings import get_settings
from serving.prediction_log import RETRY_MAX_S
from serving.server import ServerProcess, free_port
from tests.conftest import POSTGRES_ADMIN_URL, ensure_postgres
from tests.serving.conftest import KEY, Installation

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
OUTAGE_S = 3.0  # PostgreSQL stays down this long: long enough for the log writer to hit it several times
REQUEST_TIMEOUT_S = 10.0  # no request may take longer than this, outage or not
ANSWER_BOUND_S = 5.0  # ... and every answer (200 or 503) comes within this
REFUSAL_BOUND_S = 1.0  # a 503 is fast: the service refuses at once, it does not wait for the database
# the writer's next retry comes at most RETRY_MAX_S after PostgreSQL is back; then the backlog drains at once
RECOVERY_S = RETRY_MAX_S + 1.0
MAX_PENDING = 200  # a small backlog, so the outage outlasts it and the 503 path is exercised too


def _pg_ctl(action: str) -> None:
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action],
        check=True,
        capture_output=True,
        timeout=60,
    )


@dataclass
class Load:
    """One client thread sending failure-risk requests back to back until stopped."""

    url: str
    key: str
    machines: list[str]
    answers: list[tuple[float, int, float, str | None, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, headers={"X-API-Key": self.key}, timeout=REQUEST_TIMEOUT_S) as c:
            n = 0
            while not self.stop.is_set():
                machine = self.machines[n % len(self.machines)]
                started = time.monotonic()
                try:
                    answer = c.post("/v1/failure/risk", json={"machine_id": machine})
                    status, body = answer.status_code, answer.json()
                except (httpx.TransportError, ValueError) as err:
                    status, body = 0, {"detail": f"{type(err).__name__}: {err}"}
                took = time.monotonic() - started
                request_id = body.get("request_id") if status == 200 else None
                self.answers.append((started, status, took, request_id, str(body.get("detail", ""))))
                n += 1
                time.sleep(0.005)


def _copy_aliases(sqlite_url: str, postgres_url: str) -> None:
    """Champion and challenger aliases of the trained home, in the fresh PostgreSQL platform database."""
    source, target = create_engine(sqlite_url), create_engine(postgres_url)
    try:
        with source.connect() as connection:
            rows = [dict(r._mapping) for r in connection.execute(select(ModelAlias.__table__))]
        assert rows, "the trained installation has no model aliases"
        with target.begin() as connection:
            connection.execute(insert(ModelAlias.__table__), rows)
    finally:
        source.dispose()
        target.dispose()


def _admin(statement: str, **params: str) -> None:
    # a fresh engine each time: a pooled connection would not survive the restart
    engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(statement), params)
    finally:
        engine.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh platform database, dropped afterwards (after PostgreSQL is surely up again)."""
    ensure_postgres()
    name = f"mesops_test_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        ensure_postgres()
        _admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n", n=name)
        _admin(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture
def served_on_postgres(
    installation: Installation,
    postgres_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[str, str, str, list[str]]]:
    """The service on a copy of the trained home whose platform database is a fresh PostgreSQL database."""
    home = tmp_path / "home"
    shutil.copytree(installation.pristine, home)
    monkeypatch.setenv("MESOPS_HOME", str(home))
    monkeypatch.setenv("MESOPS_PSEUDONYM_KEY", KEY)
    sqlite_url = get_settings().resolved_database_url
    database.upgrade(postgres_url)
    _copy_aliases(sqlite_url, postgres_url)
    monkeypatch.setenv("MESOPS_DATABASE_URL", postgres_url)
    monkeypatch.setenv("MESOPS_PREDICTION_LOG_MAX_PENDING", str(MAX_PENDING))
    settings = get_settings()
    key = create_key(postgres_url, "integration", "restart test").key
    from serving.context import FeatureContext

    machines = sorted(FeatureContext.load(settings.home).machines)
    process = ServerProcess(settings, port=free_port(), log_path=home / "logs" / "serving-restart.log")
    process.start(ready_timeout_s=180)
    try:
        yield process.url, key, postgres_url, machines
    finally:
        process.stop()
        ensure_postgres()  # whatever happened, other tests need the server


def _logged(postgres_url: str) -> Counter[str]:
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            return Counter(r for (r,) in connection.execute(text("SELECT request_id FROM prediction_log")))
    finally:
        engine.dispose()


def test_restart_under_load_fails_fast_recovers_and_logs_each_answer_once(
    served_on_postgres: tuple[str, str, str, list[str]],
) -> None:
    url, key, postgres_url, machines = served_on_postgres
    load = Load(url, key, machines)
    thread = threading.Thread(target=load.run, daemon=True)
    thread.start()
    try:
        time.sleep(2.0)  # steady state first
        down_at = time.monotonic()
        _pg_ctl("stop")
        time.sleep(OUTAGE_S)
        _pg_ctl("start")
        up_at = time.monotonic()
        ensure_postgres()  # waits until it accepts connections
        time.sleep(RECOVERY_S + 3.0)  # the service catches up by itself: nobody restarts it
    finally:
        load.stop.set()
        thread.join(timeout=REQUEST_TIMEOUT_S + 5)
        ensure_postgres()
    assert not thread.is_alive(), "a request hung beyond the client timeout"

    statuses = Counter(status for _, status, _, _, _ in load.answers)
    during_statuses = Counter(s for t, s, _, _, _ in load.answers if down_at <= t <= up_at)
    print(
        f"restart: {len(load.answers)} requests, {dict(statuses)}; while down ({up_at - down_at:.1f} s): "
        f"{dict(during_statuses)}; slowest answer {max(a[2] for a in load.answers) * 1000:.0f} ms"
    )
    assert set(statuses) <= {200, 503}, f"unexpected answers: {statuses}"
    slowest = max(took for _, _, took, _, _ in load.answers)
    assert slowest < ANSWER_BOUND_S, f"an answer took {slowest:.1f} s"
    during = [a for a in load.answers if down_at <= a[0] <= up_at]
    assert during, "no request was sent while PostgreSQL was down"
    # first answered from memory while the log keeps the rows, then refused once the backlog is full
    assert during_statuses[200] > 0 and during_statuses[503] > 0, during_statuses
    for _, status, took, _, detail in load.answers:
        if status == 503:
            assert f"prediction_log_max_pending={MAX_PENDING}" in detail, detail
            assert took < REFUSAL_BOUND_S, f"a 503 took {took:.1f} s"
    after = [a for a in load.answers if a[0] > up_at + RECOVERY_S]
    assert after and all(status == 200 for _, status, _, _, _ in after), "the service did not recover"

    answered = [request_id for _, status, _, request_id, _ in load.answers if status == 200]
    assert len(answered) == len(set(answered))
    deadline = time.monotonic() + 30
    logged = _logged(postgres_url)
    while not set(answered) <= set(logged) and time.monotonic() < deadline:
        time.sleep(0.5)
        logged = _logged(postgres_url)
    missing = set(answered) - set(logged)
    assert not missing, f"{len(missing)} answered requests have no log row"
    twice = {r: n for r, n in logged.items() if n > 1}
    assert not twice, f"log rows written twice: {twice}"
    assert set(logged) <= set(answered), "a refused (503) request was logged"
