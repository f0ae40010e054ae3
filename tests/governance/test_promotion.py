"""Promotion moves an alias only when the version qualifies, atomically with its audit entry, one racer at a time."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from governance import audit, promotion
from governance.lineage import DatasetFingerprint, Lineage, baseline_summary
from governance.promotion import PromotionConflictError, PromotionDecision, PromotionRefusedError
from governance.registry import Registry
from mesops import database
from models.evaluation import BaselineComparison, EvaluationReport

NAME = "mesops-yield"
FRAME = pd.DataFrame({"planned_qty": [100.0, 250.0, 80.0], "speed": [1.0, 0.9, 1.1]})
WHO = {"actor": "ana", "actor_role": "ml-engineer"}


class ShareForecaster:
    """A picklable stand-in for a real forecaster: a fixed share of the planned quantity."""

    def __init__(self, share: float) -> None:
        self.share = share

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return features["planned_qty"].to_numpy() * self.share


def _report(model_mae: float) -> EvaluationReport:
    return EvaluationReport(
        task="yield",
        dataset="simulator",
        split={"train_end": "2025-03-01"},
        rows={"train": 100, "test": 30},
        features=list(FRAME.columns),
        metrics={"mae": model_mae},
        baseline=BaselineComparison(
            metric="mae",
            higher_is_better=False,
            model_value=model_mae,
            baseline_name="mean",
            baseline_value=5.0,
        ),
    )


def _lineage(report: EvaluationReport, **changes: object) -> Lineage:
    complete = Lineage(
        contracts=["production_orders@1.0.0"],
        datasets={"production_orders": DatasetFingerprint.of(FRAME, ["B-1"])},
        attestations=["c" * 64],
        training_window={"start": "2025-01-01", "end": "2025-03-01"},
        dagster_run_id="run-9",
        asset_keys=["models/yield"],
        code_version="deadbee",
        baseline=baseline_summary(report.baseline),
        anonymization_policy="1.0.0",
    )
    return complete.model_copy(update=changes)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """One MLflow store for the module, with good versions 1-4, an incomplete 5 and a worse-than-baseline 6."""
    root = tmp_path_factory.mktemp("mlflow")
    registry = Registry(f"sqlite:///{root / 'mlflow.db'}", str(root / "artifacts"))
    good = _report(3.0)
    for share in (0.91, 0.92, 0.93, 0.94):
        registry.register("yield", ShareForecaster(share), good, _lineage(good), {"share": share}, FRAME)
    incomplete = _lineage(good, attestations=[], dagster_run_id=None)
    registry.register("yield", ShareForecaster(0.95), good, incomplete, {}, FRAME)
    worse = _report(6.0)
    registry.register("yield", ShareForecaster(0.5), worse, _lineage(worse), {}, FRAME)
    return registry


@pytest.fixture
def fresh_registry(registry: Registry) -> Registry:
    """The module's registry with no aliases set (each test starts from a fresh platform database)."""
    for alias in ("champion", "challenger"):
        registry.delete_alias(NAME, alias)
    return registry


@pytest.fixture
def db_url(settings) -> str:  # type: ignore[no-untyped-def]
    database.upgrade(settings.resolved_database_url)
    return settings.resolved_database_url


def _promote(registry: Registry, url: str, version: str, **kwargs: object) -> PromotionDecision:
    return promotion.promote(registry, url, NAME, version, reason="beats baseline", **WHO, **kwargs)  # type: ignore[arg-type]


def test_promote_sets_alias_row_mlflow_alias_and_audit_entry(fresh_registry: Registry, db_url: str) -> None:
    decision = _promote(fresh_registry, db_url, "1")
    assert decision == PromotionDecision(
        model=NAME, alias="champion", from_version=None, to_version="1", audit_seq=1
    )
    assert promotion.aliases(db_url, NAME) == {"champion": "1"}
    assert fresh_registry.alias_version(NAME, "champion") == "1"
    assert fresh_registry.load(NAME, "champion").share == 0.91  # type: ignore[attr-defined]
    (entry,) = audit.entries(db_url, NAME)
    assert (entry.event.action, entry.event.model_version, entry.event.alias) == ("promote", "1", "champion")
    assert entry.event.evidence["run_id"] == fresh_registry.version(NAME, "1").run_id
    assert entry.event.evidence["baseline"]["beats_baseline"] is True
    second = _promote(fresh_registry, db_url, "2", alias="challenger")
    assert (second.from_version, second.audit_seq) == (None, 2)
    assert promotion.aliases(db_url, NAME) == {"champion": "1", "challenger": "2"}


@pytest.mark.parametrize(
    ("version", "precondition", "named"),
    [
        ("5", "lineage_complete", "attestations, dagster_run_id"),
        ("6", "beats_baseline", "does not beat its baseline"),
        ("42", "version_exists", "no version '42'"),
    ],
)
def test_refused_promotions_name_the_precondition_and_are_audited(
    fresh_registry: Registry, db_url: str, version: str, precondition: str, named: str
) -> None:
    with pytest.raises(PromotionRefusedError, match=named) as refused:
        _promote(fresh_registry, db_url, version)
    assert refused.value.precondition == precondition
    assert promotion.aliases(db_url, NAME) == {}
    assert fresh_registry.alias_version(NAME, "champion") is None
    (entry,) = audit.entries(db_url, NAME)
    assert entry.event.action == "promotion_refused"
    assert entry.event.evidence["precondition"] == precondition
    if precondition == "lineage_complete":
        assert entry.event.evidence["missing"] == ["attestations", "dagster_run_id"]


def test_promoting_the_current_version_again_is_refused(fresh_registry: Registry, db_url: str) -> None:
    _promote(fresh_registry, db_url, "1")
    with pytest.raises(PromotionRefusedError, match="already points at version 1"):
        _promote(fresh_registry, db_url, "1")


def test_rollback_restores_the_previous_champion_once(fresh_registry: Registry, db_url: str) -> None:
    _promote(fresh_registry, db_url, "1")
    _promote(fresh_registry, db_url, "3")
    decision = promotion.rollback(fresh_registry, db_url, NAME, reason="drift alarm", **WHO)  # type: ignore[arg-type]
    assert (decision.from_version, decision.to_version, decision.audit_seq) == ("3", "1", 3)
    assert promotion.aliases(db_url, NAME) == {"champion": "1"}
    assert fresh_registry.alias_version(NAME, "champion") == "1"
    assert [e.event.action for e in audit.entries(db_url, NAME)] == ["promote", "promote", "rollback"]
    with pytest.raises(PromotionRefusedError, match="no previous version") as refused:
        promotion.rollback(fresh_registry, db_url, NAME, reason="again", **WHO)  # type: ignore[arg-type]
    assert refused.value.precondition == "previous_version"


def test_demote_removes_the_challenger(fresh_registry: Registry, db_url: str) -> None:
    _promote(fresh_registry, db_url, "1")
    _promote(fresh_registry, db_url, "2", alias="challenger")
    decision = promotion.demote(fresh_registry, db_url, NAME, reason="shadow test lost", **WHO)  # type: ignore[arg-type]
    assert (decision.from_version, decision.to_version) == ("2", None)
    assert promotion.aliases(db_url, NAME) == {"champion": "1"}
    assert fresh_registry.alias_version(NAME, "challenger") is None
    assert fresh_registry.alias_version(NAME, "champion") == "1"
    with pytest.raises(PromotionRefusedError, match="not set"):
        promotion.demote(fresh_registry, db_url, NAME, reason="again", **WHO)  # type: ignore[arg-type]


def test_a_stale_decision_loses_to_the_change_it_did_not_see(fresh_registry: Registry, db_url: str) -> None:
    _promote(fresh_registry, db_url, "1")
    _promote(fresh_registry, db_url, "2")
    with pytest.raises(PromotionConflictError, match="no longer points at '1'"):
        _promote(fresh_registry, db_url, "3", expected_current="1")
    assert promotion.aliases(db_url, NAME) == {"champion": "2"}


def _race(registry: Registry, url: str, versions: list[str], expected: str | None) -> tuple[list[str], int]:
    """Promote every version at once from the same observed state; returns the winners and the conflicts."""
    start = threading.Barrier(len(versions))
    winners: list[str] = []
    conflicts: list[BaseException] = []
    others: list[BaseException] = []

    def attempt(version: str) -> None:
        start.wait()
        try:
            winners.append(_promote(registry, url, version, expected_current=expected).to_version or "")
        except PromotionConflictError as err:
            conflicts.append(err)
        except BaseException as err:  # kept to fail the test with it below
            others.append(err)

    threads = [threading.Thread(target=attempt, args=(v,)) for v in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert others == []
    return winners, len(conflicts)


def _assert_one_winner(registry: Registry, url: str, versions: list[str], expected: str | None) -> None:
    winners, conflicts = _race(registry, url, versions, expected)
    assert len(winners) == 1 and conflicts == len(versions) - 1
    assert promotion.aliases(url, NAME) == {"champion": winners[0]}
    assert registry.alias_version(NAME, "champion") == winners[0]
    promotes = [e for e in audit.entries(url, NAME) if e.event.action == "promote"]
    assert promotes[-1].event.model_version == winners[0]
    assert promotes[-1].event.evidence["from_version"] == expected
    assert audit.verify(url).ok


def _racing_rounds(registry: Registry, url: str) -> None:
    # First round: nobody is champion yet (racing inserts); second: everyone replaces the winner (racing updates).
    _assert_one_winner(registry, url, ["1", "2", "3", "4"], None)
    first = promotion.current_version(url, NAME)
    _assert_one_winner(registry, url, [v for v in ("1", "2", "3", "4") if v != first], first)
    assert len([e for e in audit.entries(url, NAME) if e.event.action == "promote"]) == 2


def test_racing_promotions_leave_one_winner_on_sqlite(fresh_registry: Registry, db_url: str) -> None:
    _racing_rounds(fresh_registry, db_url)


@pytest.mark.postgres
def test_racing_promotions_leave_one_winner_on_postgresql(
    fresh_registry: Registry, postgres_database: str
) -> None:
    database.upgrade(postgres_database)
    _racing_rounds(fresh_registry, postgres_database)
    database.get_engine(postgres_database).dispose()  # so the fixture can drop the database


def test_sync_alias_repairs_a_drifted_mlflow_alias(fresh_registry: Registry, db_url: str) -> None:
    _promote(fresh_registry, db_url, "2")
    fresh_registry.set_alias(NAME, "champion", "4")  # someone bypassed governance in the MLflow UI
    assert promotion.sync_alias(fresh_registry, db_url, NAME) == "2"
    assert fresh_registry.alias_version(NAME, "champion") == "2"
