"""Bringing extracts into the landing zone: a pull from a real OData endpoint, and file drops."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_contracts.contract import load_contracts
from pipelines.adapters.batch import list_batches, read_batch
from pipelines.adapters.errors import SourceError
from pipelines.adapters.opcenter import ODataClient
from pipelines.landing import land_files, land_odata
from pipelines.simulator import SimulationConfig, emit_extracts, simulate
from tests.pipelines.adapters.odata_server import ODataTestServer

LANDED_COLUMNS_TO_COMPARE = ["order_id", "product_id", "planned_qty", "released_at", "planner"]


def _entity_sets(batch_dir: Path) -> dict[str, list[dict]]:
    sets: dict[str, list[dict]] = {}
    for page in sorted(batch_dir.glob("*-0*.json")):
        sets.setdefault(page.stem.rsplit("-", 1)[0], []).extend(json.loads(page.read_text())["value"])
    return sets


def test_odata_pull_lands_the_same_rows_as_the_file_extract(settings, tmp_path: Path) -> None:
    contracts = load_contracts(settings.resolved_contracts_dir)
    history = simulate(SimulationConfig(seed=3, days=2, lines=1, machines_per_line=2))
    extract = emit_extracts(history, tmp_path / "extract", mes="opcenter", batch_id="extract")
    with ODataTestServer(_entity_sets(extract), page_size=7) as server:
        client = ODataClient(server.url, page_size=7, timeout_s=5)
        batch_dir = land_odata(client, settings.landing_dir, contracts, page_rows=10)
        order_requests = [path for path, _ in server.requests if "/ProductionOrders" in path]
    assert len(order_requests) == -(-len(history.tables["production_orders"]) // 7)  # every page, once
    [batch] = list_batches(settings.landing_dir)
    assert batch.path == batch_dir and batch.kind == "opcenter"
    pulled, original = read_batch(batch_dir, contracts), read_batch(extract, contracts)
    vendor_tables = {"production_orders", "operations", "machine_events", "employees", "shift_notes"}
    assert vendor_tables <= set(pulled)
    for table in vendor_tables:
        assert len(pulled[table]) == len(original[table]) == len(history.tables[table]), table
    orders = LANDED_COLUMNS_TO_COMPARE
    assert pulled["production_orders"][orders].equals(original["production_orders"][orders])
    pages = -(-len(history.tables["production_orders"]) // 10)
    assert len(list(batch_dir.glob("ProductionOrders-*.json"))) == pages > 1  # re-paged on disk


def test_file_drop_with_unknown_name_is_refused(settings, tmp_path: Path) -> None:
    contracts = load_contracts(settings.resolved_contracts_dir)
    drop = tmp_path / "readings_export.csv"
    drop.write_text("a,b\n1,2\n")
    with pytest.raises(SourceError, match="no contract maps a file named 'readings_export'"):
        land_files([drop], settings.landing_dir, contracts)
    assert list_batches(settings.landing_dir) == []


def test_pull_opcenter_job_lands_a_batch_the_sensor_will_see(settings, tmp_path: Path) -> None:
    import dagster as dg

    from pipelines.definitions import build_definitions

    history = simulate(SimulationConfig(seed=4, days=1, lines=1, machines_per_line=2))
    extract = emit_extracts(history, tmp_path / "extract", mes="opcenter", batch_id="extract")
    with ODataTestServer(_entity_sets(extract), page_size=50) as server:
        pulled = get_settings_with(settings, opcenter_url=server.url)
        job = build_definitions(pulled).resolve_job_def("pull_opcenter")
        with dg.instance_for_test() as instance:
            result = job.execute_in_process(instance=instance)
    assert result.success
    [batch] = list_batches(settings.landing_dir)
    assert result.output_for_node("pull_opcenter_extract") == batch.batch_id
    assert len(read_batch(batch.path, load_contracts(settings.resolved_contracts_dir))["operations"]) == len(
        history.tables["operations"]
    )


def test_pull_without_endpoint_fails_with_the_setting_named(settings) -> None:
    import dagster as dg

    from pipelines.definitions import build_definitions

    job = build_definitions(settings).resolve_job_def("pull_opcenter")
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "MESOPS_OPCENTER_URL" in str(failure.step_failure_data.error)


def get_settings_with(settings, **overrides):  # type: ignore[no-untyped-def]
    """The same installation with some settings overridden."""
    from mesops.settings import get_settings

    return get_settings(home=settings.home, **overrides)
