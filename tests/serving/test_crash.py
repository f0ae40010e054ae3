"""A crash (kill -9) of the service under load loses at most the prediction log rows of its last moments.

The README states the bound: rows of requests answered in the last ``MESOPS_PREDICTION_LOG_FLUSH_S`` (0.2 s)
plus the batch being written. The test answers requests from two client threads, kills the whole process group
mid-stream, and checks that every request answered earlier than that window before the kill has its row.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from governance.api_keys import create_key
from mesops import database
from mesops.serving_tables import PredictionLogEntry
from serving.server import ServerProcess, descendants, free_port, running
from tests.serving.conftest import KEY, Installation

pytestmark = pytest.mark.slow

# The window before the kill whose rows may be lost: the flush interval plus time to write one batch.
WRITE_ALLOWANCE_S = 1.0


def _drive(url: str, key: str, answered: list[tuple[float, str]], stop: threading.Event) -> None:
    with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=5) as client:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                response = client.post("/v1/failure/risk", json={"machine_id": f"M-{1 + n % 12:02d}"})
            except httpx.TransportError:
                return  # the service is gone
            if response.status_code == 200:
                answered.append((time.monotonic(), response.json()["request_id"]))


def test_kill_9_under_load_loses_only_the_last_moments_of_the_log(
    installation: Installation, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = installation.settings
    key = create_key(settings.resolved_database_url, "integration", "crash test").key
    monkeypatch.setenv("MESOPS_PSEUDONYM_KEY", KEY)
    process = ServerProcess(settings, port=free_port(), log_path=Path(settings.home) / "logs" / "crash.log")
    process.start(ready_timeout_s=180)
    answered: list[tuple[float, str]] = []
    stop = threading.Event()
    clients = [threading.Thread(target=_drive, args=(process.url, key, answered, stop)) for _ in range(2)]
    try:
        for client in clients:
            client.start()
        time.sleep(3.0)
        workers = descendants(process.process.pid) if process.process else []
        killed_at = time.monotonic()
        process.kill()
        assert workers and not any(running(pid) for pid in workers)  # no worker outlives the crash
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=10)
        process.stop()

    ids = {request_id for _, request_id in answered}
    with database.get_engine(settings.resolved_database_url).connect() as connection:
        logged = set(
            connection.scalars(
                select(PredictionLogEntry.request_id).where(PredictionLogEntry.request_id.in_(ids))
            )
        )
    window_s = settings.prediction_log_flush_s + WRITE_ALLOWANCE_S
    settled = {request_id for at, request_id in answered if at < killed_at - window_s}
    lost = ids - logged
    assert len(answered) >= 100, f"too little load to test a crash: {len(answered)} requests answered"
    assert settled - logged == set(), (
        f"{len(settled - logged)} requests answered more than {window_s} s before the kill have no log row"
    )
    print(f"answered {len(ids)}, logged {len(logged)}, lost {len(lost)} in the last {window_s} s")
