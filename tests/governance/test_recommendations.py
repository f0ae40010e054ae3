"""Planner decisions are rule-checked, audited and race-safe; outcomes are idempotent and join to predictions."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from governance import audit, recommendations
from governance.recommendations import (
    DecisionRoleError,
    DecisionRuleError,
    OutcomeConflictError,
    OutcomeRuleError,
    RecommendationConflictError,
    RecommendationNotFoundError,
    RecommendationQueryError,
    RecommendationStatus,
)
from mesops import database
from mesops.serving_tables import PredictionLogEntry, Recommendation

NAME = "mesops-failure"
T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
PLANT_TZ = timezone(timedelta(hours=1))  # a plant's local time
PLANNER = {"key_id": "k-plan", "role": "planner"}


@pytest.fixture
def db_url(settings) -> str:  # type: ignore[no-untyped-def]
    database.upgrade(settings.resolved_database_url)
    return settings.resolved_database_url


def _insert(
    url: str,
    recommendation_id: str,
    *,
    status: str = "PENDING_APPROVAL",
    model_name: str = NAME,
    minutes: int = 0,
) -> None:
    with database.session_scope(url) as session:
        session.add(
            Recommendation(
                recommendation_id=recommendation_id,
                request_id=f"req-{recommendation_id}",
                model_name=model_name,
                model_version="3",
                phase="approval",
                entity_id="M-07",
                line_id="L1",
                correlation_id=f"M-07@{recommendation_id}",
                action_class="schedule_maintenance",
                text="Schedule maintenance of M-07 before the next shift",
                details={"probability": 0.82},
                status=status,
                created_at=T0 + timedelta(minutes=minutes),
            )
        )


def _decide(url: str, rec_id: str, decision: str, reason: str, **kwargs: Any) -> tuple[Any, bool]:
    return recommendations.decide(url, rec_id, decision, reason, **(PLANNER | kwargs))


def _audit_actions(url: str) -> list[str]:
    return [entry.event.action for entry in audit.entries(url)]


# --- decisions ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("start", "decision", "reason", "modified", "expected"),
    [
        ("PENDING_APPROVAL", "accept", "agreed", None, "ACCEPTED"),
        ("OPEN", "reject", "not_feasible", None, "REJECTED"),
        ("AUTO_APPLIED", "modify", "adjusted_quantity", 42.5, "MODIFIED"),
    ],
)
def test_a_decision_moves_the_status_and_writes_one_audit_entry(
    db_url: str, start: str, decision: str, reason: str, modified: float | None, expected: str
) -> None:
    _insert(db_url, "r1", status=start)
    view, made = _decide(db_url, "r1", decision, reason, modified_value=modified, comment="line stop at 14h")
    assert made is True
    assert (view.status, view.decision, view.reason_code, view.modified_value) == (
        expected,
        decision,
        reason,
        modified,
    )
    assert (view.decided_by, view.decided_role, view.comment) == ("k-plan", "planner", "line stop at 14h")
    assert view.decided_at is not None and view.decided_at.tzinfo is not None
    assert recommendations.get(db_url, "r1") == view
    (entry,) = audit.entries(db_url, NAME)
    assert (entry.event.actor, entry.event.actor_role) == ("key:k-plan", "planner")
    assert (entry.event.action, entry.event.model_version) == (f"recommendation.{decision}", "3")
    assert entry.event.reason == f"{reason}: line stop at 14h"
    assert entry.event.evidence == {
        "recommendation_id": "r1",
        "previous_status": start,
        "modified_value": modified,
    }


@pytest.mark.parametrize(
    ("decision", "reason", "modified"),
    [("accept", "already_planned", None), ("modify", "adjusted_timing", 3.0)],
)
def test_repeating_the_same_decision_is_idempotent_and_not_audited_twice(
    db_url: str, decision: str, reason: str, modified: float | None
) -> None:
    _insert(db_url, "r1")
    first, made = _decide(db_url, "r1", decision, reason, modified_value=modified)
    again, made_again = _decide(db_url, "r1", decision, reason, modified_value=modified, comment="resent")
    assert (made, made_again) == (True, False)
    assert again == first  # the stored decision, not the repeat's comment
    assert _audit_actions(db_url) == [f"recommendation.{decision}"]


@pytest.mark.parametrize(
    ("second", "match"),
    [
        (("reject", "wrong_prediction", None), r"is ACCEPTED with decision accept \(agreed\); cannot reject"),
        (("accept", "already_planned", None), r"cannot accept \(already_planned\)"),
    ],
)
def test_a_different_second_decision_is_a_conflict(
    db_url: str, second: tuple[str, str, float | None], match: str
) -> None:
    _insert(db_url, "r1")
    first, _ = _decide(db_url, "r1", "accept", "agreed")
    decision, reason, modified = second
    with pytest.raises(RecommendationConflictError, match=match):
        _decide(db_url, "r1", decision, reason, modified_value=modified)
    assert recommendations.get(db_url, "r1") == first
    assert len(list(audit.entries(db_url))) == 1


def test_a_modify_with_another_value_conflicts_naming_both(db_url: str) -> None:
    _insert(db_url, "r1")
    _decide(db_url, "r1", "modify", "adjusted_quantity", modified_value=10.0)
    with pytest.raises(RecommendationConflictError, match=r"modified_value 10\.0.*modified_value 12\.0"):
        _decide(db_url, "r1", "modify", "adjusted_quantity", modified_value=12.0)


def test_unknown_recommendations_are_not_found(db_url: str) -> None:
    with pytest.raises(RecommendationNotFoundError, match="'nope'"):
        _decide(db_url, "nope", "accept", "agreed")
    with pytest.raises(RecommendationNotFoundError, match="'nope'"):
        recommendations.get(db_url, "nope")
    assert _audit_actions(db_url) == []


@pytest.mark.parametrize("role", ["governance", "ml-engineer", "integration"])
def test_only_planners_decide(db_url: str, role: str) -> None:
    _insert(db_url, "r1")
    with pytest.raises(DecisionRoleError, match=f"needs role 'planner'.*'{role}'") as refused:
        _decide(db_url, "r1", "accept", "agreed", role=role)
    assert isinstance(refused.value, PermissionError)
    assert recommendations.get(db_url, "r1").status == "PENDING_APPROVAL"
    assert _audit_actions(db_url) == []


@pytest.mark.parametrize(
    ("decision", "reason", "extra", "match"),
    [
        ("accept", "wrong_prediction", {}, "not allowed for accept; allowed: agreed, already_planned"),
        ("reject", "agreed", {}, "allowed: wrong_prediction, not_feasible, already_handled, other"),
        (
            "modify",
            "not_feasible",
            {"modified_value": 1.0},
            "allowed: adjusted_quantity, adjusted_timing, other",
        ),
        ("reject", "because", {}, "reason_code: 'because' is not allowed"),
        ("accept", "", {}, "reason_code: must not be empty"),
        ("approve", "agreed", {}, "decision: must be one of accept, reject, modify"),
        ("modify", "adjusted_quantity", {}, "modified_value: required when the decision is modify"),
        ("modify", "other", {"modified_value": math.nan}, "modified_value: must be a finite number"),
        ("accept", "agreed", {"modified_value": 5.0}, "modified_value: only allowed with modify"),
        ("reject", "other", {"comment": "x" * 501}, "comment: at most 500 characters"),
        ("accept", "agreed", {"key_id": ""}, "key_id: must be 1 to 40 characters"),
    ],
)
def test_decision_rules_are_enforced_before_anything_is_written(
    db_url: str, decision: str, reason: str, extra: dict[str, Any], match: str
) -> None:
    _insert(db_url, "r1")
    with pytest.raises(DecisionRuleError, match=match):
        _decide(db_url, "r1", decision, reason, **extra)
    assert recommendations.get(db_url, "r1").decision is None
    assert _audit_actions(db_url) == []


def _race(url: str, rec_id: str, attempts: list[tuple[str, str]]) -> tuple[list[bool], list[Exception]]:
    """Decide one recommendation from several threads at once; returns each winner's flag and the errors."""
    start = threading.Barrier(len(attempts))
    made: list[bool] = []
    errors: list[Exception] = []

    def attempt(decision: str, reason: str) -> None:
        start.wait()
        try:
            made.append(_decide(url, rec_id, decision, reason)[1])
        except Exception as err:  # collected: the test asserts which kinds occurred
            errors.append(err)

    threads = [threading.Thread(target=attempt, args=pair) for pair in attempts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return made, errors


def _racing_decisions(url: str, rounds: int) -> None:
    for number in range(rounds):
        rec_id = f"race-{number}"
        _insert(url, rec_id)
        made, errors = _race(url, rec_id, [("accept", "agreed"), ("reject", "wrong_prediction")])
        assert made == [True]
        assert len(errors) == 1 and isinstance(errors[0], RecommendationConflictError)
        winner = recommendations.get(url, rec_id)
        assert winner.status in {"ACCEPTED", "REJECTED"}
        _insert(url, f"same-{number}")
        same, same_errors = _race(url, f"same-{number}", [("accept", "agreed"), ("accept", "agreed")])
        assert sorted(same) == [False, True] and same_errors == []
    decided = [e for e in audit.entries(url) if e.event.action.startswith("recommendation.")]
    assert len(decided) == 2 * rounds  # one entry per recommendation, whoever won
    for number in range(rounds):
        (entry,) = [e for e in decided if e.event.evidence["recommendation_id"] == f"race-{number}"]
        assert entry.event.action == f"recommendation.{recommendations.get(url, f'race-{number}').decision}"
    assert audit.verify(url).ok


def test_racing_deciders_leave_one_winner_on_sqlite(db_url: str) -> None:
    _racing_decisions(db_url, rounds=3)


@pytest.mark.postgres
def test_racing_deciders_leave_one_winner_on_postgresql(postgres_database: str) -> None:
    database.upgrade(postgres_database)
    try:
        _racing_decisions(postgres_database, rounds=3)
        # Different recommendations decided at once contend only for the audit sequence: all must succeed.
        for number in range(8):
            _insert(postgres_database, f"parallel-{number}")
        made: list[bool] = []
        errors: list[Exception] = []
        start = threading.Barrier(8)

        def decide_one(number: int) -> None:
            start.wait()
            try:
                made.append(_decide(postgres_database, f"parallel-{number}", "accept", "agreed")[1])
            except Exception as err:  # collected to fail the test with it below
                errors.append(err)

        threads = [threading.Thread(target=decide_one, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [] and made == [True] * 8
        assert audit.verify(postgres_database) == audit.Verification(entries=14, ok=True)
    finally:
        database.get_engine(postgres_database).dispose()  # so the fixture can drop the database


# --- reading ------------------------------------------------------------------------------------------
def test_listing_is_newest_first_and_filters_by_model_and_status(db_url: str) -> None:
    _insert(db_url, "a", minutes=1)
    _insert(db_url, "b", minutes=3, status="OPEN")
    _insert(db_url, "c", minutes=2)
    _insert(db_url, "d", minutes=4, model_name="mesops-yield")
    _decide(db_url, "a", "reject", "already_handled")
    assert [r.recommendation_id for r in recommendations.list_recommendations(db_url)] == ["d", "b", "c", "a"]
    assert [r.recommendation_id for r in recommendations.list_recommendations(db_url, model_name=NAME)] == [
        "b",
        "c",
        "a",
    ]
    pending = recommendations.list_recommendations(db_url, status=RecommendationStatus.PENDING_APPROVAL)
    assert [r.recommendation_id for r in pending] == ["d", "c"]
    assert [r.recommendation_id for r in recommendations.list_recommendations(db_url, limit=1)] == ["d"]
    assert recommendations.pending_count(db_url) == {NAME: 1, "mesops-yield": 1}
    with pytest.raises(RecommendationQueryError, match="status: must be one of OPEN"):
        recommendations.list_recommendations(db_url, status="DONE")
    with pytest.raises(RecommendationQueryError, match="limit: must be at least 1"):
        recommendations.list_recommendations(db_url, limit=0)


# --- outcomes -----------------------------------------------------------------------------------------
def _outcome(url: str, correlation_id: str = "M-07@2026-03-02T06", **changes: Any) -> tuple[Any, bool]:
    fields = {
        "model_name": NAME,
        "correlation_id": correlation_id,
        "entity_id": "M-07",
        "actual": 1.0,
        "observed_at": T0 + timedelta(hours=5),
        "key_id": "k-mes",
    }
    return recommendations.record_outcome(url, **(fields | changes))


def test_an_outcome_is_recorded_once_and_repeats_are_idempotent(db_url: str) -> None:
    first, made = _outcome(db_url, observed_at=datetime(2026, 3, 2, 12, 0, tzinfo=PLANT_TZ))
    assert made is True
    assert first.observed_at == datetime(2026, 3, 2, 11, 0, tzinfo=UTC)  # stored in UTC
    assert (first.actual, first.posted_by) == (1.0, "k-mes")
    again, made_again = _outcome(db_url, key_id="k-other")
    assert (again, made_again) == (first, False)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"actual": 0.0}, r"already has actual 1\.0; refusing 0\.0"),
        ({"entity_id": "M-08"}, "recorded for entity 'M-07'; refusing 'M-08'"),
    ],
)
def test_a_different_outcome_for_the_same_correlation_id_conflicts(
    db_url: str, changes: dict[str, Any], match: str
) -> None:
    _outcome(db_url)
    with pytest.raises(OutcomeConflictError, match=match):
        _outcome(db_url, **changes)
    _, made = _outcome(
        db_url, model_name="mesops-yield", actual=0.0
    )  # another model's correlation ids are apart
    assert made is True


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"actual": math.inf}, "actual: must be a finite number"),
        ({"actual": math.nan}, "actual: must be a finite number"),
        ({"observed_at": datetime(2026, 3, 2, 11, 0)}, "observed_at: must carry a time zone"),
        ({"correlation_id": ""}, "correlation_id: must be 1 to 200 characters"),
        ({"entity_id": "x" * 121}, "entity_id: must be 1 to 120 characters"),
    ],
)
def test_outcome_rules(db_url: str, changes: dict[str, Any], match: str) -> None:
    with pytest.raises(OutcomeRuleError, match=match):
        _outcome(db_url, **changes)
    assert recommendations.resolved_predictions(db_url, NAME).empty


def test_an_outcome_inserted_between_read_and_write_is_resolved_by_the_idempotency_rule(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_find: Callable[..., Any] = recommendations._find_outcome
    calls: list[int] = []

    def find_after_a_racer(url: str, model_name: str, correlation_id: str) -> Any:
        calls.append(1)
        if len(calls) == 1:  # the racer's insert lands after our first read
            monkeypatch.setattr(recommendations, "_find_outcome", real_find)
            _outcome(url, correlation_id=correlation_id)
            monkeypatch.setattr(recommendations, "_find_outcome", find_after_a_racer)
            return None
        return real_find(url, model_name, correlation_id)

    monkeypatch.setattr(recommendations, "_find_outcome", find_after_a_racer)
    _, made = _outcome(db_url)
    assert made is False
    calls.clear()
    with pytest.raises(OutcomeConflictError, match=r"already has actual 1\.0; refusing 5\.0"):
        _outcome(db_url, correlation_id="M-07@later", actual=5.0)


def test_racing_posts_of_one_outcome_record_it_once(db_url: str) -> None:
    start = threading.Barrier(4)
    made: list[bool] = []
    errors: list[Exception] = []

    def post() -> None:
        start.wait()
        try:
            made.append(_outcome(db_url)[1])
        except Exception as err:  # collected to fail the test with it below
            errors.append(err)

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and sorted(made) == [False, False, False, True]


# --- predictions joined to outcomes -------------------------------------------------------------------
def _log(url: str, request_id: str, correlation_id: str, *, model_name: str = NAME, minutes: int = 0) -> None:
    with database.session_scope(url) as session:
        session.add(
            PredictionLogEntry(
                request_id=request_id,
                created_at=T0 + timedelta(minutes=minutes),
                endpoint="predict_failure",
                model_name=model_name,
                phase="shadow",
                entity_id="M-07",
                correlation_id=correlation_id,
                answered_by="champion",
                answered_version="3",
                champion_version="3",
                challenger_version="4",
                features={"tool_wear": 180},
                champion_output={"probability": 0.8},
                challenger_output={"probability": 0.6},
                recommendation_id=None,
                status="ok",
                latency_ms=4.2,
            )
        )


def test_resolved_predictions_join_each_logged_prediction_to_its_outcome(db_url: str) -> None:
    _log(db_url, "q2", "c-1", minutes=2)
    _log(db_url, "q1", "c-1", minutes=1)  # the same shift asked twice: both rows resolve
    _log(db_url, "q3", "c-2", minutes=3)  # no outcome yet
    _log(db_url, "q4", "c-1", model_name="mesops-yield")  # same correlation id, another model
    _outcome(db_url, correlation_id="c-1", actual=1.0)
    _outcome(db_url, correlation_id="c-9", actual=0.0)  # an outcome nobody predicted
    frame = recommendations.resolved_predictions(db_url, NAME)
    assert list(frame.columns) == list(recommendations.RESOLVED_COLUMNS)
    assert frame["request_id"].tolist() == ["q1", "q2"]
    assert frame["actual"].tolist() == [1.0, 1.0]
    assert frame["champion_output"].iloc[0] == {"probability": 0.8}
    assert frame["created_at"].iloc[0] == T0 + timedelta(minutes=1)
    assert frame["observed_at"].iloc[0] == T0 + timedelta(hours=5)
    assert recommendations.resolved_predictions(db_url, "mesops-yield").empty


@pytest.mark.parametrize("year", [1600, 2500])
def test_far_outcome_dates_are_refused(db_url: str, year: int) -> None:
    with pytest.raises(recommendations.OutcomeRuleError, match="observed_at: must lie between"):
        recommendations.record_outcome(
            db_url,
            model_name="mesops-yield",
            correlation_id="far",
            entity_id="WO-1",
            actual=1.0,
            observed_at=datetime(year, 1, 1, tzinfo=UTC),
            key_id="k1",
        )
