"""A trained installation and the real service on a free port, shared by the HTTP tests of this folder."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from governance.api_keys import create_key
from governance.promotion import promote
from governance.registry import Registry
from mesops.settings import Settings, get_settings
from pipelines.runner import ingest_batches, train_models
from pipelines.simulator import SimulationConfig, emit_extracts, simulate
from pipelines.training import register_candidate
from serving.server import ServerProcess, free_port

KEY = "test-key-0123456789abcdef"


@dataclass
class Installation:
    """A trained MESOPS_HOME: version 1 of every model is champion, version 2 is registered (not aliased)."""

    settings: Settings
    roster_values: list[str]
    pristine: Path  # a copy of the home as trained, before any test served or promoted anything


@pytest.fixture(scope="session")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Installation:
    """Simulate, ingest and train once (about a minute and a half); register a second version of each model."""
    from tests.personal_data import planted_values

    home = tmp_path_factory.mktemp("serving") / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MESOPS_HOME", str(home))
        patch.setenv("MESOPS_PSEUDONYM_KEY", KEY)
        settings = get_settings()
        settings.ensure_dirs()
        history = simulate(SimulationConfig(seed=7, days=90, lines=2, machines_per_line=6, defect_rate=0.01))
        emit_extracts(history, settings.landing_dir / "opcenter" / "b90", mes="opcenter", batch_id="b90")
        [ingest] = ingest_batches(settings)
        assert ingest.success, ingest.failed_steps
        trained = train_models(settings)
        assert trained.success, trained.failed_steps
        for task in ("failure", "yield", "consumption"):
            register_candidate(settings, task, "second-version", [])
    pristine = home.parent / "pristine"
    shutil.copytree(home, pristine)
    return Installation(settings, planted_values(history.tables["employees"]), pristine)


@dataclass
class Service:
    """The running service and a key per role."""

    url: str
    settings: Settings
    keys: dict[str, str]
    process: ServerProcess

    def client(self, role: str) -> httpx.Client:
        """An HTTP client sending the key of ``role``."""
        return httpx.Client(base_url=self.url, headers={"X-API-Key": self.keys[role]}, timeout=30)


@pytest.fixture(scope="session")
def service(installation: Installation) -> Iterator[Service]:
    """The real service (bentoml serve in a subprocess) on a free port, with a challenger for failure."""
    settings = installation.settings
    url = settings.resolved_database_url
    promote(
        Registry.from_settings(settings),
        url,
        "mesops-failure",
        "2",
        alias="challenger",
        actor="test",
        actor_role="ml-engineer",
        reason="challenger for the routing tests",
    )
    keys = {
        role: create_key(url, role, f"test {role}").key
        for role in ("integration", "planner", "ml-engineer", "governance")
    }
    settings = settings.model_copy(update={"serving_refresh_s": 0.5})
    process = ServerProcess(
        settings, port=free_port(), log_path=Path(settings.home) / "logs" / "serving-test.log"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MESOPS_SERVING_REFRESH_S", "0.5")
        patch.setenv("MESOPS_PSEUDONYM_KEY", KEY)
        process.start(ready_timeout_s=180)
    try:
        yield Service(process.url, settings, keys, process)
    finally:
        process.stop()
