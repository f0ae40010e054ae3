"""Rollout state: a challenger starts in shadow, phase changes are audited, a new challenger resets it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from governance import audit, rollout
from governance.phase_policy import Phase, load_policies
from mesops import database
from mesops.rollout_tables import ModelAlias

POLICIES = load_policies(Path(__file__).resolve().parents[2] / "governance" / "policies")
MODEL = "mesops-failure"


@pytest.fixture
def db_url(settings) -> str:  # type: ignore[no-untyped-def]
    url = settings.resolved_database_url
    database.upgrade(url)
    return url


def _alias(url: str, alias: str, version: str) -> None:
    with database.session_scope(url) as session:
        row = session.get(ModelAlias, (MODEL, alias)) or ModelAlias(model_name=MODEL, alias=alias)
        row.version, row.updated_at = version, datetime.now(UTC)
        session.add(row)


def test_no_challenger_means_no_phase_and_setting_one_is_refused(db_url: str) -> None:
    _alias(db_url, "champion", "1")
    assert rollout.view(db_url, MODEL) == rollout.RolloutView(
        model_name=MODEL, champion="1", challenger=None, phase=None
    )
    with pytest.raises(rollout.RolloutError, match="no challenger"):
        rollout.set_phase(
            db_url, MODEL, Phase.APPROVAL, POLICIES[MODEL], actor="t", actor_role="ml-engineer", reason="r"
        )


def test_phase_follows_its_challenger_and_is_audited(db_url: str) -> None:
    _alias(db_url, "champion", "1")
    _alias(db_url, "challenger", "2")
    assert rollout.view(db_url, MODEL).phase == Phase.SHADOW
    entry = rollout.set_phase(
        db_url, MODEL, Phase.APPROVAL, POLICIES[MODEL], actor="eng", actor_role="ml-engineer", reason="ok"
    )
    assert rollout.view(db_url, MODEL).phase == Phase.APPROVAL
    assert entry.event.evidence["from_phase"] == "shadow"
    assert entry.event.evidence["policy_sha256"] == POLICIES[MODEL].sha256
    assert [e.event.action for e in audit.entries(db_url, MODEL)] == ["set_phase"]
    _alias(db_url, "challenger", "3")  # a new challenger does not inherit the phase of the last one
    assert rollout.view(db_url, MODEL).phase == Phase.SHADOW


def test_a_policy_of_another_model_is_refused(db_url: str) -> None:
    _alias(db_url, "challenger", "2")
    with pytest.raises(rollout.RolloutError, match="not the policy of"):
        rollout.set_phase(
            db_url,
            MODEL,
            Phase.APPROVAL,
            POLICIES["mesops-yield"],
            actor="t",
            actor_role="ml-engineer",
            reason="r",
        )
