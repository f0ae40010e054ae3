"""The audit trail is append-only in effect: any edit, deletion or reordering is found and named."""

from __future__ import annotations

import itertools
import threading

import pytest
from sqlalchemy import text

from governance import audit
from mesops import database


def _event(n: int) -> audit.AuditEvent:
    return audit.AuditEvent(
        actor=f"user-{n}",
        actor_role="ml-engineer",
        action="promote",
        model_name="mesops-failure",
        model_version=str(n),
        alias="champion",
        reason=f"beats baseline ({n})",
        evidence={"run_id": f"r{n}"},
    )


@pytest.fixture
def url(settings) -> str:  # type: ignore[no-untyped-def]
    database.upgrade(settings.resolved_database_url)
    return settings.resolved_database_url


def _fill(url: str, n: int = 5) -> None:
    for i in range(1, n + 1):
        audit.append(url, _event(i))


def _sql(url: str, statement: str) -> None:
    with database.get_engine(url).begin() as conn:
        conn.execute(text(statement))


def test_chain_verifies_and_links_entries(url: str) -> None:
    _fill(url)
    result = audit.verify(url)
    assert result.ok and result.entries == 5
    chain = list(audit.entries(url))
    assert [e.seq for e in chain] == [1, 2, 3, 4, 5]
    assert all(b.prev_hash == a.entry_hash for a, b in itertools.pairwise(chain))
    assert chain[0].prev_hash == audit.GENESIS_HASH
    assert [e.event.model_version for e in audit.entries(url, model_name="mesops-failure")] == list("12345")


@pytest.mark.parametrize(
    ("tamper", "bad_seq", "words"),
    [
        ("UPDATE audit_log SET reason = 'nothing to see' WHERE seq = 3", 3, "edited"),
        ('UPDATE audit_log SET evidence = \'{"run_id": "forged"}\' WHERE seq = 2', 2, "edited"),
        ("DELETE FROM audit_log WHERE seq = 4", 4, "missing"),
        ("DELETE FROM audit_log WHERE seq = 5", 5, "deleted"),
        ("UPDATE audit_log SET seq = seq + 100 WHERE seq = 2", 2, "missing"),
    ],
)
def test_tampering_is_found_and_named(url: str, tamper: str, bad_seq: int, words: str) -> None:
    _fill(url)
    _sql(url, tamper)
    result = audit.verify(url)
    assert not result.ok
    assert result.first_bad_seq == bad_seq
    assert words in (result.problem or "")


def test_reordering_two_entries_is_found(url: str) -> None:
    _fill(url)
    _sql(url, "UPDATE audit_log SET seq = 99 WHERE seq = 2")
    _sql(url, "UPDATE audit_log SET seq = 2 WHERE seq = 3")
    _sql(url, "UPDATE audit_log SET seq = 3 WHERE seq = 99")
    result = audit.verify(url)
    assert not result.ok and result.first_bad_seq == 2


def _race(url: str, writers: int = 4, each: int = 10) -> None:
    def write(w: int) -> None:
        for i in range(each):
            audit.append(url, _event(w * 100 + i))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = audit.verify(url)
    assert result.ok, result.problem
    assert result.entries == writers * each


def test_concurrent_writers_keep_one_linear_chain_sqlite(url: str) -> None:
    _race(url)


@pytest.mark.postgres
def test_concurrent_writers_keep_one_linear_chain_postgres(postgres_database: str) -> None:
    database.upgrade(postgres_database)
    _race(postgres_database)
    _sql(postgres_database, "UPDATE audit_log SET actor = 'someone else' WHERE seq = 7")
    assert audit.verify(postgres_database).first_bad_seq == 7
    database.get_engine(postgres_database).dispose()
