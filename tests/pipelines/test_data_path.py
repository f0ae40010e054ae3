"""The data path end to end through Dagster: simulated extracts in; anonymized, validated tables out."""

from __future__ import annotations

import pandas as pd
import pytest

from data_contracts.contract import load_contracts
from data_contracts.landed import issues_from_json
from pipelines.runner import ingest_batches
from pipelines.simulator import SimulationConfig, emit_extracts, simulate
from pipelines.zones import ZoneStore
from tests.personal_data import find_in_text, find_personal_data, planted_values

pytestmark = pytest.mark.slow

SMALL_PLANT = {"seed": 11, "days": 4, "lines": 1, "machines_per_line": 3, "defect_rate": 0.03}


def _quarantined_keys(store: ZoneStore, contract) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    rows = store.read_all("quarantine", contract.name)
    if rows.empty:
        return set()
    keys = rows[contract.primary_key].astype(str).agg("|".join, axis=1)
    return set(zip(keys, rows["_reasons"].map(lambda r: issues_from_json(r)[0].rule), strict=True))


def _run(settings, mes: str):  # type: ignore[no-untyped-def]
    history = simulate(SimulationConfig(**SMALL_PLANT))
    emit_extracts(history, settings.landing_dir / mes / f"{mes}-test", mes=mes, batch_id=f"{mes}-test")
    runs = ingest_batches(settings)
    return history, runs


@pytest.mark.parametrize("mes", ["opcenter", "plex"])
def test_planted_defects_are_quarantined_exactly(settings, mes: str) -> None:
    history, runs = _run(settings, mes)
    assert [r.success for r in runs] == [True], runs[0].failed_steps if runs else "no run"
    store = ZoneStore(settings.home)
    contracts = load_contracts(settings.resolved_contracts_dir)
    loads = {load.table_name: load for load in runs[0].loads}
    for name, contract in contracts.items():
        if contract.landing_only or name not in history.tables:
            continue
        load = loads[name]
        assert load.landed == len(history.tables[name]), name
        assert load.landed == load.valid + load.quarantined, name
        planted = {d.key for d in history.planted_defects if d.table == name}
        quarantined = {key for key, _ in _quarantined_keys(store, contract)}
        assert quarantined == planted, f"{name}: quarantined {sorted(quarantined ^ planted)[:5]} differ"
    assert sum(load.quarantined for load in loads.values()) == len(history.planted_defects) > 0


def test_no_personal_data_outside_landing(settings) -> None:
    history, runs = _run(settings, "opcenter")
    assert runs[0].success
    values = planted_values(
        history.tables["employees"], [e.value for e in history.personal_truth if e.form == "offroster_name"]
    )
    # the cache holds only spaCy's blank pipeline (library files such as the tokenizer's "Jan." exception),
    # built from no data; everything else under MESOPS_HOME is searched
    assert {p.name for p in settings.cache_dir.iterdir()} <= {"spacy-blank"}
    hits = find_personal_data(settings.home, values, skip=[settings.landing_dir, settings.cache_dir])
    assert hits == []
    # the landing zone does hold them: the search can find what it looks for
    assert find_personal_data(settings.landing_dir, values)


def test_reingesting_a_batch_is_repeatable(settings) -> None:
    _, first = _run(settings, "opcenter")
    second = ingest_batches(settings, [first[0].batch_id])

    def counts(run):  # type: ignore[no-untyped-def]
        return {(load.table_name, load.landed, load.valid, load.quarantined) for load in run.loads}

    assert counts(first[0]) == counts(second[0])
    curated = ZoneStore(settings.home).read_all("curated", "sensor_readings")
    assert not curated.duplicated(subset=["machine_id", "ts"]).any()
    assert pd.api.types.is_datetime64_any_dtype(curated["ts"])


@pytest.mark.postgres
def test_same_pipeline_on_postgres(settings, make_postgres_database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Platform database and Dagster instance on the local PostgreSQL: same exact quarantine, no leak."""
    from sqlalchemy import create_engine, text

    from mesops.settings import get_settings

    platform_url, dagster_url = make_postgres_database(), make_postgres_database()
    monkeypatch.setenv("MESOPS_DATABASE_URL", platform_url)
    monkeypatch.setenv("MESOPS_DAGSTER_POSTGRES_URL", dagster_url)
    pg_settings = get_settings()
    history, runs = _run(pg_settings, "opcenter")
    assert [r.success for r in runs] == [True], runs[0].failed_steps
    loads = {load.table_name: load for load in runs[0].loads}
    planted = {}
    for defect in history.planted_defects:
        planted[defect.table] = planted.get(defect.table, 0) + 1
    assert {t: n for t, n in ((t, load.quarantined) for t, load in loads.items()) if n} == planted
    engine = create_engine(dagster_url)
    with engine.connect() as conn:  # the Dagster run and its events live in PostgreSQL, not SQLite
        assert conn.execute(text("select count(*) from runs")).scalar() == 1
        assert conn.execute(text("select count(*) from event_logs")).scalar() > 100
    engine.dispose()
    assert not list(pg_settings.dagster_home.glob("**/*.db")), (
        "no SQLite storage when PostgreSQL is configured"
    )
    values = planted_values(history.tables["employees"])
    assert (
        find_personal_data(pg_settings.home, values, skip=[pg_settings.landing_dir, pg_settings.cache_dir])
        == []
    )
    with create_engine(dagster_url).connect() as conn:  # nor in the Dagster event log
        events = " ".join(str(r[0]) for r in conn.execute(text("select event from event_logs")))
    assert find_in_text(events, values) == []
