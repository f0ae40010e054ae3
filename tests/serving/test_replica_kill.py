"""kill -9 of one of two service replicas mid-batch: the other answers everything, the log loses only the last moments.

Two replicas (as `mesops up` runs them: mesops.stack.Replica on consecutive ports) share one fresh PostgreSQL
platform database and one home. Client threads send failure-risk requests and batches of BATCH_SIZE through
:class:`RoundRobin`, a load balancer on the client side: each request goes to the next replica and, on a connection
error (refused, reset, or closed without an answer), the same request is sent once more to the other replica. The
test kills one replica (its whole process tree) while a batch is in flight on it and checks that every request
is answered, that every answer of the survivor has exactly one prediction-log row, and that the killed replica's
answers without a row were all given within the documented window before the kill (README "Prediction log":
the last ``prediction_log_flush_s`` plus the batch being written).
"""

from __future__ import annotations

import itertools
import shutil
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from governance.api_keys import create_key
from mesops import database
from mesops.settings import Settings, get_settings
from mesops.stack import Replica
from serving.server import descendants, free_ports, running
from tests.serving.conftest import KEY, Installation
from tests.serving.test_postgres_restart import _copy_aliases

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

CLIENTS = 4  # client threads, each sending back to back
BATCH_SIZE = 20  # machines per /v1/failure/risk/batch request
BEFORE_KILL_S = 2.0  # steady load on both replicas first
AFTER_KILL_S = 3.0  # then load on the survivor alone
KILL_WAIT_S = 5.0  # longest wait for a batch in flight on the victim, to kill it mid-batch
REQUEST_TIMEOUT_S = 10.0
LOG_WAIT_S = 30.0  # the survivor writes every prediction_log_flush_s; this only bounds a failing test
# Margin on top of the flush interval for writing the batch in progress (as tests/serving/test_crash.py).
WRITE_ALLOWANCE_S = 1.0
VICTIM, SURVIVOR = 0, 1


def loss_window_s(settings: Settings) -> float:
    """How long before a crash an answered request may still lack its log row: flush interval plus a margin."""
    return settings.prediction_log_flush_s + WRITE_ALLOWANCE_S


@dataclass(frozen=True)
class Outcome:
    """One client request as the load balancer saw it: who answered, when, and whether it was retried."""

    kind: str  # "single" or "batch"
    correlation_ids: tuple[str, ...]
    sent_at: float
    answered_at: float
    replica: int | None  # the replica whose answer the client got (None: no answer)
    status: int  # HTTP status, 0 without an answer
    request_ids: tuple[str, ...]
    retried: str | None  # None; "refused" (the first replica was gone) or "interrupted" (sent, no answer)
    detail: str = ""


@dataclass
class RoundRobin:
    """A client-side load balancer: each request to the next replica, once more to the other on a connection error.

    That is what an HTTP load balancer retrying on the next upstream does (nginx ``proxy_next_upstream error``;
    for a POST already sent it needs ``non_idempotent``). It does no health checks, so after the kill every
    other request is refused by the dead replica first and answered by the survivor on the retry.
    """

    urls: list[str]
    _turn: Iterator[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _flights: threading.Condition = field(default_factory=threading.Condition)
    _batches_in_flight: Counter[int] = field(default_factory=Counter)

    def post(self, clients: list[httpx.Client], path: str, body: dict[str, Any], batch: bool) -> Outcome:
        """Send ``body`` to the next replica, or to the other one if the first fails to answer."""
        with self._lock:
            first = next(self._turn) % len(self.urls)
        sent_at, retried, detail = time.monotonic(), None, ""
        for replica in (first, (first + 1) % len(self.urls)):
            try:
                with self._flight(replica, batch):
                    response = clients[replica].post(path, json=body)
            except httpx.ConnectError as err:
                retried, detail = "refused", f"{type(err).__name__}: {err}"
                continue
            except (httpx.NetworkError, httpx.RemoteProtocolError) as err:
                retried, detail = "interrupted", f"{type(err).__name__}: {err}"
                continue
            return _outcome(body, sent_at, replica, response, retried)
        return Outcome(
            _kind(body), _correlations(body), sent_at, time.monotonic(), None, 0, (), retried, detail
        )

    @contextmanager
    def _flight(self, replica: int, batch: bool) -> Iterator[None]:
        with self._flights:
            self._batches_in_flight[replica] += int(batch)
            self._flights.notify_all()
        try:
            yield
        finally:
            with self._flights:
                self._batches_in_flight[replica] -= int(batch)

    def wait_batch_in_flight(self, replica: int, timeout_s: float) -> bool:
        """Until a batch request is on its way to ``replica`` (or the time runs out)."""
        with self._flights:
            return self._flights.wait_for(lambda: self._batches_in_flight[replica] > 0, timeout_s)


def _kind(body: dict[str, Any]) -> str:
    return "batch" if "requests" in body else "single"


def _correlations(body: dict[str, Any]) -> tuple[str, ...]:
    return tuple(r["correlation_id"] for r in body.get("requests", [body]))


def _outcome(
    body: dict[str, Any], sent_at: float, replica: int, response: httpx.Response, retried: str | None
) -> Outcome:
    answered_at = time.monotonic()
    request_ids: tuple[str, ...] = ()
    if response.status_code == 200:
        answer = response.json()
        request_ids = tuple(r["request_id"] for r in answer.get("results", [answer]))
    detail = "" if response.status_code == 200 else response.text[:300]
    return Outcome(
        _kind(body),
        _correlations(body),
        sent_at,
        answered_at,
        replica,
        response.status_code,
        request_ids,
        retried,
        detail,
    )


@dataclass
class Client:
    """One client thread: failure-risk requests and batches, alternately, back to back until stopped."""

    name: str
    balancer: RoundRobin
    key: str
    machines: list[str]
    outcomes: list[Outcome] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        headers = {"X-API-Key": self.key}
        clients = [
            httpx.Client(base_url=u, headers=headers, timeout=REQUEST_TIMEOUT_S) for u in self.balancer.urls
        ]
        try:
            for n in itertools.count():
                if self.stop.is_set():
                    return
                if n % 2:
                    batch = [self._request(n, i) for i in range(BATCH_SIZE)]
                    outcome = self.balancer.post(clients, "/v1/failure/risk/batch", {"requests": batch}, True)
                else:
                    outcome = self.balancer.post(clients, "/v1/failure/risk", self._request(n, 0), False)
                self.outcomes.append(outcome)
        finally:
            for client in clients:
                client.close()

    def _request(self, n: int, i: int) -> dict[str, str]:
        # A correlation id per prediction: a row logged by the victim for an answer the client never got
        # can be traced to the request the load balancer retried.
        return {
            "machine_id": self.machines[(n + i) % len(self.machines)],
            "correlation_id": f"{self.name}-{n}-{i}",
        }


@dataclass
class Replicas:
    """Two running replicas on one PostgreSQL platform database, a key, and the machines to ask about."""

    replicas: list[Replica]
    settings: Settings
    postgres_url: str
    key: str
    machines: list[str]


@pytest.fixture
def two_replicas(
    installation: Installation, postgres_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Replicas]:
    """Two replicas sharing a copy of the trained home and a fresh PostgreSQL platform database (dropped after)."""
    home = tmp_path / "home"
    shutil.copytree(installation.pristine, home)
    monkeypatch.setenv("MESOPS_HOME", str(home))
    monkeypatch.setenv("MESOPS_PSEUDONYM_KEY", KEY)
    sqlite_url = get_settings().resolved_database_url
    database.upgrade(postgres_database)  # once, before the replicas start (as `mesops up` does)
    _copy_aliases(sqlite_url, postgres_database)
    monkeypatch.setenv("MESOPS_DATABASE_URL", postgres_database)
    settings = get_settings()
    key = create_key(postgres_database, "integration", "replica kill test").key
    from serving.context import FeatureContext

    machines = sorted(FeatureContext.load(settings.home).machines)
    first_port = free_ports(2)
    replicas = [Replica(settings, {}, "127.0.0.1", first_port + i) for i in range(2)]
    try:
        for replica in replicas:
            replica.start()  # both load their models at once
        for replica in replicas:
            replica.wait_ready(180)
        yield Replicas(replicas, settings, postgres_database, key, machines)
    finally:
        for replica in replicas:
            replica.stop()


def _logged(postgres_url: str) -> tuple[Counter[str], Counter[str]]:
    """Rows of the prediction log per request_id and per correlation_id."""
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT request_id, correlation_id FROM prediction_log")).all()
    finally:
        engine.dispose()
    return Counter(r for r, _ in rows), Counter(c for _, c in rows)


def _wait_logged(postgres_url: str, wanted: set[str]) -> tuple[Counter[str], Counter[str]]:
    """The log once it holds every id of ``wanted`` (or after LOG_WAIT_S)."""
    deadline = time.monotonic() + LOG_WAIT_S
    by_request, by_correlation = _logged(postgres_url)
    while not wanted <= set(by_request) and time.monotonic() < deadline:
        time.sleep(0.2)
        by_request, by_correlation = _logged(postgres_url)
    return by_request, by_correlation


def test_kill_9_of_one_replica_mid_batch_the_other_answers_and_the_log_loses_only_the_last_moments(
    two_replicas: Replicas,
) -> None:
    victim, survivor = two_replicas.replicas[VICTIM], two_replicas.replicas[SURVIVOR]
    balancer = RoundRobin([r.process.url for r in two_replicas.replicas])
    tag = f"rk{uuid.uuid4().hex[:6]}"
    clients = [
        Client(f"{tag}-c{n}", balancer, two_replicas.key, two_replicas.machines) for n in range(CLIENTS)
    ]
    threads = [threading.Thread(target=c.run, daemon=True) for c in clients]
    victim_pid = victim.pid()
    assert victim_pid is not None
    workers = descendants(victim_pid)
    for thread in threads:
        thread.start()
    try:
        time.sleep(BEFORE_KILL_S)  # both replicas under load
        assert balancer.wait_batch_in_flight(VICTIM, KILL_WAIT_S), "no batch request reached the victim"
        killed_at = time.monotonic()
        victim.process.kill()
        dead_at = time.monotonic()
        time.sleep(AFTER_KILL_S)  # the survivor alone under the same load
    finally:
        for client in clients:
            client.stop.set()
        for thread in threads:
            thread.join(timeout=REQUEST_TIMEOUT_S * 2 + 5)
    assert not any(t.is_alive() for t in threads), "a request hung beyond the client timeout"
    assert workers and not any(running(pid) for pid in workers), "a worker of the victim outlived the kill"

    outcomes = [o for c in clients for o in c.outcomes]
    _assert_every_request_answered(outcomes, dead_at)
    window_s = loss_window_s(two_replicas.settings)
    figures = _assert_log(two_replicas.postgres_url, outcomes, killed_at, window_s)
    assert httpx.get(f"{survivor.process.url}/readyz", timeout=5).status_code == 200

    retried = Counter(o.retried for o in outcomes if o.retried)
    print(
        f"replica kill: {len(outcomes)} requests ({sum(len(o.request_ids) for o in outcomes)} predictions, "
        f"{sum(o.kind == 'batch' for o in outcomes)} batches of {BATCH_SIZE}) in "
        f"{BEFORE_KILL_S + AFTER_KILL_S:.0f} s; answered by the victim {figures['victim']} and the survivor "
        f"{figures['survivor']}; {len([o for o in outcomes if o.sent_at >= dead_at])} sent after the kill; "
        f"retried {sum(retried.values())} ({retried['refused']} refused, {retried['interrupted']} interrupted "
        f"in flight: {figures['interrupted_batches']} of them batches); lost {figures['lost']} predictions "
        f"of the victim, all answered in the last {figures['lost_span_s'] * 1000:.0f} ms before the kill "
        f"(bound {window_s:.1f} s); {figures['orphans']} rows logged by the victim for answers it never "
        f"delivered (their requests retried, {figures['twice_per_correlation']} predictions logged twice)"
    )


def _assert_every_request_answered(outcomes: list[Outcome], dead_at: float) -> None:
    """No 5xx, no request without an answer; after the kill only the survivor answers; batches are whole."""
    assert len(outcomes) >= 50, f"too little load: {len(outcomes)} requests"
    failed = [o for o in outcomes if o.status != 200]
    assert not failed, f"{len(failed)} requests not answered 200, e.g. {failed[:3]}"
    assert all(len(o.request_ids) == (BATCH_SIZE if o.kind == "batch" else 1) for o in outcomes)
    after = [o for o in outcomes if o.sent_at >= dead_at]
    assert len(after) >= 20, f"too little load after the kill: {len(after)} requests"
    assert all(o.replica == SURVIVOR for o in after), (
        "a request sent after the kill was answered by the victim"
    )
    assert all(o.answered_at <= dead_at for o in outcomes if o.replica == VICTIM)
    assert any(o.replica == VICTIM for o in outcomes), "the victim answered nothing before the kill"
    assert any(o.retried for o in after), "no request sent after the kill went to the dead replica first"
    mid_batch = [o for o in outcomes if o.retried == "interrupted" and o.kind == "batch"]
    assert mid_batch, "the kill interrupted no batch in flight"


def _assert_log(
    postgres_url: str, outcomes: list[Outcome], killed_at: float, window_s: float
) -> dict[str, Any]:
    """The survivor's answers logged once each; the victim's missing only within ``window_s`` of the kill."""
    survivor_ids = {r for o in outcomes if o.replica == SURVIVOR for r in o.request_ids}
    victim_answers = [(o.answered_at, r) for o in outcomes if o.replica == VICTIM for r in o.request_ids]
    victim_ids = {r for _, r in victim_answers}
    assert len(survivor_ids) + len(victim_ids) == sum(len(o.request_ids) for o in outcomes), (
        "a request_id repeats"
    )
    by_request, by_correlation = _wait_logged(postgres_url, survivor_ids)

    assert survivor_ids <= set(by_request), (
        f"{len(survivor_ids - set(by_request))} survivor answers not logged"
    )
    twice = {r: n for r, n in by_request.items() if n > 1}
    assert not twice, f"rows logged twice: {twice}"
    lost = [(at, r) for at, r in victim_answers if r not in by_request]
    early = [(killed_at - at, r) for at, r in lost if at < killed_at - window_s]
    assert not early, (
        f"{len(early)} victim answers given more than {window_s} s before the kill lack a row: {early[:3]}"
    )

    # Rows no client received an answer for: the victim logged them and died before it answered. Each must
    # belong to a request the load balancer retried after an interrupted attempt (then answered by the survivor).
    orphans = set(by_request) - survivor_ids - victim_ids
    interrupted = {c for o in outcomes if o.retried == "interrupted" for c in o.correlation_ids}
    orphan_correlations = {c for c, n in by_correlation.items() if n > 1}
    assert len(orphan_correlations) == len(orphans) and orphan_correlations <= interrupted, (
        f"{len(orphans)} rows without an answer, correlation ids logged twice: {sorted(orphan_correlations)[:5]}"
    )
    return {
        "victim": len(victim_ids),
        "survivor": len(survivor_ids),
        "lost": len(lost),
        "lost_span_s": max((killed_at - at for at, _ in lost), default=0.0),
        "orphans": len(orphans),
        "twice_per_correlation": len(orphan_correlations),
        "interrupted_batches": sum(o.retried == "interrupted" and o.kind == "batch" for o in outcomes),
    }
