"""Dagster resources: the platform (settings, zone store, contracts) and the MES sources batches come from."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from data_contracts.contract import Contract, load_contracts
from mesops import database
from mesops.settings import Settings, get_settings
from pipelines.adapters.batch import BatchRef, list_batches
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


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """The resources every data-path asset needs, for one installation."""
    return {
        "platform": PlatformResource(home=str(settings.home)),
        "landing": LandingFolderSource(landing_dir=str(settings.landing_dir)),
    }
