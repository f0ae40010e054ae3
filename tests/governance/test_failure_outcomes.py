"""Failure outcomes from machine events: which logged predictions a down event or an operation completed resolves."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from governance import recommendations
from governance.recommendations import FailureObservation, OutcomeRuleError
from mesops import database
from mesops.serving_tables import Outcome, PredictionLogEntry

NAME = "mesops-failure"
H = timedelta(hours=8)
T = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # when the machine event happened
_ids = itertools.count()


@pytest.fixture
def db_url(settings) -> str:  # type: ignore[no-untyped-def]
    database.upgrade(settings.resolved_database_url)
    return settings.resolved_database_url


def _logged(
    url: str,
    correlation_id: str,
    created_at: datetime,
    *,
    machine: str = "M-01",
    model: str = NAME,
) -> None:
    with database.session_scope(url) as session:
        session.add(
            PredictionLogEntry(
                request_id=f"req-{next(_ids)}",
                created_at=created_at,
                endpoint="bridge:failure",
                model_name=model,
                phase="none",
                entity_id=machine,
                correlation_id=correlation_id,
                answered_by="champion",
                answered_version="1",
                champion_version="1",
                challenger_version=None,
                features={},
                champion_output={"probability": 0.2},
                challenger_output=None,
                recommendation_id=None,
                status="OPEN",
                latency_ms=1.0,
            )
        )


def _observe(url: str, at: datetime, failed: bool, **kwargs) -> FailureObservation:  # type: ignore[no-untyped-def]
    machine = kwargs.pop("machine", "M-01")
    return recommendations.record_failure_observation(
        url, machine, at, failed, "mes-bridge", model_name=NAME, horizon=H, **kwargs
    )


def _outcomes(url: str) -> dict[str, float]:
    with database.session_scope(url) as session:
        return {o.correlation_id: o.actual for o in session.scalars(select(Outcome))}


def test_a_down_event_resolves_the_predictions_whose_horizon_holds_it(db_url: str) -> None:
    _logged(db_url, "in-early", T - H)  # horizon ends exactly at T: T is inside (end inclusive)
    _logged(db_url, "in-late", T - timedelta(minutes=1))
    _logged(db_url, "ended", T - H - timedelta(seconds=1))  # horizon ended just before T
    _logged(db_url, "at-event", T)  # made at the failure itself: (T, T + H] does not hold T
    _logged(db_url, "after", T + timedelta(hours=1))
    _logged(db_url, "other-machine", T - timedelta(hours=1), machine="M-02")
    _logged(db_url, "other-model", T - timedelta(hours=1), model="mesops-yield")
    _logged(db_url, "own", T - timedelta(minutes=2))  # the down event's own prediction

    seen = _observe(db_url, T, True, exclude_correlation_id="own")

    assert _outcomes(db_url) == {"in-early": 1.0, "in-late": 1.0}
    assert (seen.predictions, seen.outcomes, seen.conflicts, seen.actual) == (2, 2, 0, 1.0)
    assert seen.observed_at == T and seen.machine_id == "M-01"


def test_an_operation_completed_resolves_the_predictions_whose_horizon_ended(db_url: str) -> None:
    _logged(db_url, "ended-exactly", T - H)
    _logged(db_url, "ended-long-ago", T - H - timedelta(days=2))
    _logged(db_url, "open", T - H + timedelta(seconds=1))  # its horizon is still open at T
    _logged(db_url, "beyond-lookback", T - H - timedelta(days=8))
    _logged(db_url, "other-machine", T - H - timedelta(hours=1), machine="M-02")

    seen = _observe(db_url, T, False)

    assert _outcomes(db_url) == {"ended-exactly": 0.0, "ended-long-ago": 0.0}
    assert (seen.predictions, seen.outcomes, seen.actual) == (2, 2, 0.0)


def test_a_down_event_then_an_operation_completed_label_each_prediction_once(db_url: str) -> None:
    _logged(db_url, "before-failure", T - timedelta(hours=2))
    _logged(db_url, "after-failure", T + timedelta(hours=1))
    assert _observe(db_url, T, True).predictions == 1
    # much later the machine runs again: the prediction labelled by the failure keeps its 1
    later = _observe(db_url, T + timedelta(hours=12), False)
    assert later.predictions == 1
    assert _outcomes(db_url) == {"before-failure": 1.0, "after-failure": 0.0}


def test_a_replayed_observation_records_nothing_new_and_counts_the_same(db_url: str) -> None:
    _logged(db_url, "a", T - timedelta(hours=1))
    _logged(db_url, "b", T - timedelta(hours=3))
    first = _observe(db_url, T, True)
    with database.session_scope(db_url) as session:
        received = sorted(o.received_at for o in session.scalars(select(Outcome)))
    again = _observe(db_url, T, True)
    assert first == again and first.predictions == 2
    with database.session_scope(db_url) as session:
        assert sorted(o.received_at for o in session.scalars(select(Outcome))) == received
    # another observation at another time finds them resolved already: nothing twice
    assert _observe(db_url, T + timedelta(minutes=30), True).predictions == 0


def test_one_outcome_per_correlation_id_resolves_every_prediction_that_carries_it(db_url: str) -> None:
    _logged(db_url, "M-01@2026-03-02T06:00:00+00:00", T - timedelta(hours=4))
    _logged(db_url, "M-01@2026-03-02T06:00:00+00:00", T - timedelta(hours=3))  # asked twice, same context
    seen = _observe(db_url, T, True)
    assert (seen.predictions, seen.outcomes) == (2, 1)
    assert len(_outcomes(db_url)) == 1


def test_a_prediction_resolved_otherwise_is_left_alone(db_url: str) -> None:
    _logged(db_url, "posted", T - timedelta(hours=1))
    recommendations.record_outcome(
        db_url,
        model_name=NAME,
        correlation_id="posted",
        entity_id="M-01",
        actual=0.0,
        observed_at=T - timedelta(minutes=5),
        key_id="k-mes",
    )
    seen = _observe(db_url, T, True)
    assert (seen.predictions, seen.conflicts) == (0, 0)
    assert _outcomes(db_url) == {"posted": 0.0}


def test_observation_times_in_a_plant_zone_are_compared_in_utc(db_url: str) -> None:
    _logged(db_url, "a", T - timedelta(hours=1))
    plant = timezone(timedelta(hours=1))
    seen = _observe(db_url, T.astimezone(plant), True)
    assert seen.predictions == 1 and seen.observed_at == T


def test_a_naive_observation_time_is_refused(db_url: str) -> None:
    with pytest.raises(OutcomeRuleError, match="observed_at: must carry a time zone"):
        _observe(db_url, T.replace(tzinfo=None), True)


def test_an_outcome_posted_between_read_and_write_is_a_conflict_not_an_error(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _logged(db_url, "raced", T - timedelta(hours=1))
    _logged(db_url, "free", T - timedelta(hours=2))
    recommendations.record_outcome(
        db_url,
        model_name=NAME,
        correlation_id="raced",
        entity_id="M-01",
        actual=0.0,
        observed_at=T - timedelta(minutes=5),
        key_id="k-mes",
    )
    monkeypatch.setattr(recommendations, "_outcomes_of", lambda *_: {})  # read before the other post landed
    seen = _observe(db_url, T, True)
    assert (seen.predictions, seen.outcomes, seen.conflicts) == (1, 1, 1)
    assert _outcomes(db_url) == {"raced": 0.0, "free": 1.0}
