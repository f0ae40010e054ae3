"""Phase routing: for one request, which version answers and what status its recommendation gets.

Pure functions of the rollout view, the phase policy and the entity (machine, order or meter) the request is
about. Assignment is sticky: an entity's bucket is a hash of (model, challenger version, entity), so the same
machine is answered by the same arm on every request of a phase, and a new challenger reshuffles the buckets.

- no challenger: the champion answers; its recommendation is OPEN (advisory).
- shadow: the champion answers; the challenger is scored on the same features off the request path.
  (Whenever there is a challenger, the arm that did not answer is scored that way, so both outputs are logged.)
- approval: entities in the challenger's share are answered by it; those recommendations are PENDING_APPROVAL.
- autonomous: as approval, but the challenger's low-risk recommendation classes are AUTO_APPLIED.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from governance.phase_policy import Phase, PhasePolicy
from governance.recommendations import RecommendationStatus

CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True, slots=True)
class Route:
    """Who answers one request, and whether the other arm is scored too (off the request path, logged)."""

    answered_by: str  # CHAMPION or CHALLENGER
    score_other: bool


def bucket(model_name: str, challenger_version: str, entity_id: str) -> float:
    """A stable number in [0, 1) for an entity under one challenger (sticky assignment)."""
    digest = hashlib.blake2b(f"{model_name}|{challenger_version}|{entity_id}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big") / 2**64


def route(
    model_name: str,
    challenger_version: str | None,
    phase: Phase | None,
    policy: PhasePolicy | None,
    entity_id: str,
) -> Route:
    """The arm that answers a request about ``entity_id``; with a challenger, the other arm is scored too."""
    if challenger_version is None or phase is None:
        return Route(CHAMPION, score_other=False)
    share = 0.0 if policy is None else policy.challenger_share(phase)
    if share > 0 and bucket(model_name, challenger_version, entity_id) < share:
        return Route(CHALLENGER, score_other=True)
    return Route(CHAMPION, score_other=True)


def recommendation_status(
    answered_by: str, phase: Phase | None, policy: PhasePolicy | None, action_class: str
) -> RecommendationStatus:
    """The status a new recommendation starts in."""
    if answered_by == CHAMPION or phase is None:
        return RecommendationStatus.OPEN
    if phase == Phase.AUTONOMOUS and policy is not None and policy.is_low_risk(action_class):
        return RecommendationStatus.AUTO_APPLIED
    return RecommendationStatus.PENDING_APPROVAL
