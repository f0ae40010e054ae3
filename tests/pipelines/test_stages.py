"""The stages without Dagster: a table with no (or a mismatching) attestation is never curated."""

from __future__ import annotations

import pandas as pd
import pytest

from data_contracts.anonymization.attestation import AttestationMismatchError
from data_contracts.contract import load_contracts
from mesops import database
from pipelines import stages
from pipelines.adapters.batch import list_batches
from pipelines.simulator import SimulationConfig, emit_extracts, simulate
from pipelines.zones import ZoneStore


@pytest.fixture
def landed_batch(settings):  # type: ignore[no-untyped-def]
    history = simulate(SimulationConfig(seed=5, days=1, lines=1, machines_per_line=2))
    emit_extracts(history, settings.landing_dir / "opcenter" / "b1", mes="opcenter", batch_id="b1")
    database.upgrade(settings.resolved_database_url)
    contracts = load_contracts(settings.resolved_contracts_dir)
    store = ZoneStore(settings.home)
    [batch] = list_batches(settings.landing_dir)
    for name in ("employees", "machines", "shift_notes"):
        stages.land(store, contracts[name], batch)
    return store, contracts


def test_attested_table_is_curated(settings, landed_batch) -> None:
    store, contracts = landed_batch
    stages.anonymize(store, settings, contracts["machines"], "b1")
    stages.anonymize(store, settings, contracts["shift_notes"], "b1")
    result = stages.validate_table(store, settings, contracts["shift_notes"], "b1", run_id="r1")
    assert result.landed == result.valid_count + result.quarantined_count > 0
    assert store.curated_path("shift_notes", "b1").exists()


def test_missing_attestation_blocks_curation(settings, landed_batch) -> None:
    store, contracts = landed_batch
    stages.anonymize(store, settings, contracts["shift_notes"], "b1")
    store.attestation_path("shift_notes", "b1").unlink()
    with pytest.raises(stages.StageError, match="no anonymization attestation"):
        stages.validate_table(store, settings, contracts["shift_notes"], "b1", run_id="r1")
    assert not store.curated_path("shift_notes", "b1").exists()


def test_edited_anonymized_table_blocks_curation(settings, landed_batch) -> None:
    store, contracts = landed_batch
    stages.anonymize(store, settings, contracts["shift_notes"], "b1")
    path = store.anonymized_path("shift_notes", "b1")
    frame = store.read(path)
    frame.loc[0, "text"] = "edited after anonymization"
    store.write(frame, path)
    with pytest.raises(AttestationMismatchError, match="content_sha256"):
        stages.validate_table(store, settings, contracts["shift_notes"], "b1", run_id="r1")


def test_roster_never_leaves_landing(settings, landed_batch) -> None:
    store, contracts = landed_batch
    with pytest.raises(stages.StageError, match="landing-only"):
        stages.anonymize(store, settings, contracts["employees"], "b1")
    assert not store.anonymized_path("employees", "b1").exists()
    assert isinstance(stages.load_roster(store), pd.DataFrame) and len(stages.load_roster(store)) > 0
