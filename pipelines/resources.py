"""Dagster resources: the platform (settings, zone store, contracts) and the MES sources batches come from."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import dagster as dg

from data_contracts.contract import Contract, load_contracts
from mesops import database
from mesops.settings import Settings, get_settings
from pipelines.adapters.batch import BatchRef, list_batches
from pipelines.adapters.opcenter import ODataClient
from pipelines.landing import land_odata
from pipelines.zones import ZoneStore


class PlatformResource(dg.ConfigurableResource):
    """Settings, zone store and contracts of one mesops installation (MESOPS_HOME)."""

    home: str

    def settings(self) -> Settings:
        return get_settings(home=Path(self.home))

    def store(self) -> ZoneStore:
        return ZoneStore(self.settings().home)

    def contracts(self) -> dict[str, Contract]:
        return load_contracts(self.settings().resolved_contracts_dir)

    def ensure_database(self) -> str:
        """Upgrade the platform database schema (idempotent) and return its URL."""
        url = self.settings().resolved_database_url
        database.upgrade(url)
        return url


class LandingFolderSource(dg.ConfigurableResource):
    """MES extracts dropped as batch folders under the landing zone (files, or pulled from an endpoint)."""

    landing_dir: str

    def complete_batches(self) -> list[BatchRef]:
        return list_batches(Path(self.landing_dir))

    def batch(self, batch_id: str) -> BatchRef:
        for batch in self.complete_batches():
            if batch.batch_id == batch_id:
                return batch
        raise dg.Failure(
            f"landing batch {batch_id!r} not found (or has no _manifest.json) in {self.landing_dir}"
        )


class OpcenterEndpointSource(dg.ConfigurableResource):
    """An Opcenter OData v4 endpoint that extracts are pulled from into a new landing batch."""

    base_url: str | None = None
    page_size: int = 5000
    timeout_s: float = 30.0

    def pull(self, landing_dir: Path, contracts: Mapping[str, Contract]) -> Path:
        """Pull every mapped entity set (following @odata.nextLink) into landing/opcenter/<new batch>."""
        if not self.base_url:
            raise dg.Failure("no Opcenter endpoint configured: set MESOPS_OPCENTER_URL")
        with ODataClient(self.base_url, page_size=self.page_size, timeout_s=self.timeout_s) as client:
            return land_odata(client, landing_dir, contracts, self.page_size)


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """The resources every data-path asset needs, for one installation."""
    return {
        "platform": PlatformResource(home=str(settings.home)),
        "landing": LandingFolderSource(landing_dir=str(settings.landing_dir)),
        "opcenter": OpcenterEndpointSource(
            base_url=settings.opcenter_url,
            page_size=settings.odata_page_size,
            timeout_s=settings.http_timeout_s,
        ),
    }
