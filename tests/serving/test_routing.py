"""Phase routing: who answers in each phase, sticky shares, and the status a recommendation starts in."""

from __future__ import annotations

from pathlib import Path

import pytest

from governance.phase_policy import Phase, load_policies
from serving.routing import CHALLENGER, CHAMPION, bucket, recommendation_status, route

POLICY = load_policies(Path(__file__).resolve().parents[2] / "governance" / "policies")["mesops-failure"]
ENTITIES = [f"M-{i:03d}" for i in range(2000)]


def test_without_a_challenger_the_champion_answers_alone() -> None:
    chosen = route("mesops-failure", None, None, POLICY, "M-001")
    assert (chosen.answered_by, chosen.score_other) == (CHAMPION, False)


def test_shadow_never_answers_with_the_challenger_but_scores_it() -> None:
    routes = {route("mesops-failure", "2", Phase.SHADOW, POLICY, e) for e in ENTITIES}
    assert {(r.answered_by, r.score_other) for r in routes} == {(CHAMPION, True)}


@pytest.mark.parametrize("phase", [Phase.APPROVAL, Phase.AUTONOMOUS])
def test_the_challenger_answers_its_share_sticky_per_entity(phase: Phase) -> None:
    first = [route("mesops-failure", "2", phase, POLICY, e).answered_by for e in ENTITIES]
    again = [route("mesops-failure", "2", phase, POLICY, e).answered_by for e in ENTITIES]
    assert first == again
    share = first.count(CHALLENGER) / len(first)
    assert share == pytest.approx(POLICY.challenger_share(phase), abs=0.04)


def test_a_new_challenger_reshuffles_the_buckets() -> None:
    v2 = [bucket("mesops-failure", "2", e) < 0.2 for e in ENTITIES]
    v3 = [bucket("mesops-failure", "3", e) < 0.2 for e in ENTITIES]
    assert v2 != v3 and all(0 <= bucket("m", "1", e) < 1 for e in ENTITIES[:50])


@pytest.mark.parametrize(
    ("answered_by", "phase", "action", "status"),
    [
        (CHAMPION, None, "plan_maintenance", "OPEN"),
        (CHAMPION, Phase.APPROVAL, "no_action", "OPEN"),
        (CHALLENGER, Phase.APPROVAL, "no_action", "PENDING_APPROVAL"),
        (CHALLENGER, Phase.AUTONOMOUS, "no_action", "AUTO_APPLIED"),
        (CHALLENGER, Phase.AUTONOMOUS, "plan_maintenance", "PENDING_APPROVAL"),
    ],
)
def test_recommendation_status(answered_by: str, phase: Phase | None, action: str, status: str) -> None:
    assert recommendation_status(answered_by, phase, POLICY, action).value == status
