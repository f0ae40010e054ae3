"""ODataClient against a real local OData server: paging, errors, loops, absent entity sets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from data_contracts.contract import Contract, load_contracts
from data_contracts.landed import LANDING_ROW, SOURCE
from pipelines.adapters.errors import EntitySetNotFound, SourceError
from pipelines.adapters.opcenter import ODataClient, read_opcenter
from tests.pipelines.adapters.odata_server import Fault, ODataTestServer

CONTRACTS_DIR = Path(__file__).resolve().parents[3] / "data_contracts" / "contracts"
EVENTS = [
    {"Id": f"EV-{n}", "EquipmentNId": "M-01", "State": "running", "StartTime": f"2025-03-01T06:{n:02d}:00"}
    for n in range(7)
]
MACHINES = [
    {
        "EquipmentNId": "M-01",
        "NId": "WC-1",
        "ProductionLineNId": "L1",
        "EquipmentType": "press",
        "CommissionedOn": "2019-04-01",
    }
]


@pytest.fixture
def server() -> Iterator[ODataTestServer]:
    with ODataTestServer({"EquipmentEvents": EVENTS, "WorkCenters": MACHINES}, page_size=2) as running:
        yield running


@pytest.fixture
def client(server: ODataTestServer) -> Iterator[ODataClient]:
    with ODataClient(server.url, page_size=100, timeout_s=5.0) as odata:
        yield odata


def page_requests(server: ODataTestServer, entity_set: str) -> list[str]:
    return [path for path, _ in server.requests if f"/{entity_set}" in path]


def test_client_pages_through_every_record_exactly_once_in_order(
    server: ODataTestServer, client: ODataClient
) -> None:
    records = list(client.iter_entity("EquipmentEvents"))
    assert [r["Id"] for r in records] == [f"EV-{n}" for n in range(7)]
    assert len(page_requests(server, "EquipmentEvents")) == 4  # pages of 2: 2 + 2 + 2 + 1


def test_client_asks_for_its_page_size_without_capping_the_result(server: ODataTestServer) -> None:
    server.page_size = 100
    with ODataClient(server.url, page_size=3, timeout_s=5.0) as odata:
        assert len(list(odata.iter_entity("EquipmentEvents"))) == 7
    requests = [(p, h) for p, h in server.requests if "EquipmentEvents" in p]
    assert len(requests) == 3  # 3 + 3 + 1
    assert all(h.get("Prefer") == "odata.maxpagesize=3" for _, h in requests)
    assert not any("$top" in p for p, _ in requests)


def test_absolute_next_links_are_followed() -> None:
    with (
        ODataTestServer({"EquipmentEvents": EVENTS}, page_size=3, absolute_links=True) as server,
        ODataClient(server.url + "/", page_size=3, timeout_s=5.0) as odata,
    ):
        assert [r["Id"] for r in odata.iter_entity("EquipmentEvents")] == [f"EV-{n}" for n in range(7)]


def test_a_given_httpx_client_is_used_and_left_open(server: ODataTestServer) -> None:
    with httpx.Client() as http:
        with ODataClient(server.url, client=http, page_size=5, timeout_s=5.0) as odata:
            assert len(list(odata.iter_entity("WorkCenters"))) == 1
        assert not http.is_closed


def test_server_error_names_url_and_status(server: ODataTestServer, client: ODataClient) -> None:
    server.fail("EquipmentEvents", Fault(status=500))
    with pytest.raises(SourceError, match=r"/odata/EquipmentEvents: HTTP 500") as caught:
        list(client.iter_entity("EquipmentEvents"))
    assert caught.value.status == 500


def test_error_on_a_later_page_is_not_swallowed(server: ODataTestServer, client: ODataClient) -> None:
    server.fail("EquipmentEvents", Fault(status=503, times=1, page=4))
    with pytest.raises(SourceError, match=r"EquipmentEvents\?\$skiptoken=4: HTTP 503"):
        list(client.iter_entity("EquipmentEvents"))
    assert [r["Id"] for r in client.iter_entity("EquipmentEvents")] == [f"EV-{n}" for n in range(7)]


def test_invalid_json_is_a_source_error(server: ODataTestServer, client: ODataClient) -> None:
    server.fail("EquipmentEvents", Fault(body=b"<html>maintenance</html>"))
    with pytest.raises(SourceError, match=r"/odata/EquipmentEvents: invalid JSON"):
        list(client.iter_entity("EquipmentEvents"))


def test_missing_value_array_is_a_source_error(server: ODataTestServer, client: ODataClient) -> None:
    server.fail("EquipmentEvents", Fault(body=b'{"data": []}'))
    with pytest.raises(SourceError, match=r"field 'value': OData page without a 'value' array"):
        list(client.iter_entity("EquipmentEvents"))


def test_next_link_loop_is_detected(server: ODataTestServer, client: ODataClient) -> None:
    server.fail("EquipmentEvents", Fault(loop=True))
    with pytest.raises(SourceError, match="nextLink loop"):
        list(client.iter_entity("EquipmentEvents"))


def test_timeout_is_a_source_error(server: ODataTestServer) -> None:
    server.fail("WorkCenters", Fault(delay_s=0.5, times=1))
    with (
        ODataClient(server.url, page_size=5, timeout_s=0.2) as odata,
        pytest.raises(SourceError, match="timed out"),
    ):
        list(odata.iter_entity("WorkCenters"))


def test_unreachable_endpoint_is_a_source_error() -> None:
    server = ODataTestServer({})
    url = server.url  # the port is free again once the server is closed, never started
    server._server.server_close()
    with (
        ODataClient(url, page_size=5, timeout_s=2.0) as odata,
        pytest.raises(SourceError, match="request failed"),
    ):
        list(odata.iter_entity("WorkCenters"))


def test_unknown_entity_set_is_not_found(client: ODataClient) -> None:
    with pytest.raises(EntitySetNotFound, match="HTTP 404"):
        list(client.iter_entity("Nope"))


def test_read_opcenter_over_http_treats_404_as_absent(client: ODataClient) -> None:
    contracts = load_contracts(CONTRACTS_DIR)
    landed = read_opcenter(client, contracts)
    assert set(landed) == {"machine_events", "machines"}
    events = landed["machine_events"]
    assert events["event_id"].tolist() == [f"EV-{n}" for n in range(7)]
    assert events[LANDING_ROW].tolist() == list(range(7))
    assert events[SOURCE].iloc[0] == f"opcenter:{client.base_url}/EquipmentEvents"
    assert landed["machines"]["commissioned_on"].tolist() == ["2019-04-01"]


def test_read_opcenter_over_http_raises_other_errors(server: ODataTestServer, client: ODataClient) -> None:
    contracts: dict[str, Contract] = load_contracts(CONTRACTS_DIR)
    server.fail("WorkCenters", Fault(status=401))
    with pytest.raises(SourceError, match="HTTP 401"):
        read_opcenter(client, contracts)


def test_missing_ok_turns_an_absent_entity_set_into_no_records(client: ODataClient) -> None:
    assert list(client.iter_entity("Nope", missing_ok=True)) == []


def test_missing_ok_does_not_hide_a_404_on_a_later_page(server: ODataTestServer, client: ODataClient) -> None:
    server.fail("EquipmentEvents", Fault(status=404, page=2))
    with pytest.raises(SourceError, match=r"skiptoken=2: HTTP 404"):
        list(client.iter_entity("EquipmentEvents", missing_ok=True))
