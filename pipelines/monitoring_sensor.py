"""What starts the monitor job: its schedule (MESOPS_MONITORING_CRON), and a sensor on the volume of feedback.

The sensor counts planner decisions and outcomes that arrived since the last monitor run it requested; at
``MESOPS_MONITORING_FEEDBACK_MIN`` it requests one, so fresh evidence reaches the gates before the next
scheduled run. Its cursor is how far it counted (newest outcome id, newest decision time). A row committed
after a newer one was counted may be missed by the count; the schedule still covers it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
from sqlalchemy import func, inspect, select

from mesops import database
from mesops.serving_tables import Outcome, Recommendation
from pipelines.resources import PlatformResource


@dataclass(frozen=True)
class FeedbackMark:
    """How far feedback was counted: the newest outcome id and the newest decision time seen."""

    outcome_id: int = 0
    decided_at: datetime | None = None

    def cursor(self) -> str:
        decided = None if self.decided_at is None else self.decided_at.isoformat()
        return json.dumps({"outcome_id": self.outcome_id, "decided_at": decided})

    @classmethod
    def from_cursor(cls, cursor: str | None) -> FeedbackMark:
        """The mark a sensor cursor holds (no cursor: nothing counted yet)."""
        if not cursor:
            return cls()
        try:
            data = json.loads(cursor)
            decided = data["decided_at"]
            return cls(int(data["outcome_id"]), None if decided is None else datetime.fromisoformat(decided))
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(
                f"cursor: expected {{'outcome_id': int, 'decided_at': ISO time or null}}, got {cursor!r} ({err})"
            ) from None


@dataclass(frozen=True)
class FeedbackVolume:
    """Decisions and outcomes that arrived after a mark, and the mark that counts them in."""

    decisions: int
    outcomes: int
    mark: FeedbackMark

    @property
    def total(self) -> int:
        return self.decisions + self.outcomes


def feedback_since(db_url: str, mark: FeedbackMark) -> FeedbackVolume:
    """Count the decisions (by decision time) and outcomes (by id) of every model after ``mark``."""
    outcomes = select(func.count(), func.max(Outcome.id)).where(Outcome.id > mark.outcome_id)
    decisions = select(func.count(), func.max(Recommendation.decided_at)).where(
        Recommendation.decided_at.is_not(None)
    )
    if mark.decided_at is not None:
        decisions = decisions.where(Recommendation.decided_at > mark.decided_at.astimezone(UTC))
    with database.session_scope(db_url) as session:
        outcome_count, outcome_max = session.execute(outcomes).one()
        decision_count, decided_max = session.execute(decisions).one()
    newest = mark.decided_at if decided_max is None else _utc(decided_max)
    return FeedbackVolume(
        decisions=decision_count,
        outcomes=outcome_count,
        mark=FeedbackMark(outcome_max or mark.outcome_id, newest),
    )


def _utc(moment: datetime) -> datetime:
    # SQLite hands datetimes back without a zone; they were written in UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def build_monitoring_schedule(job_name: str, cron: str) -> dg.ScheduleDefinition:
    """The monitor job on MESOPS_MONITORING_CRON, running from the start."""
    return dg.ScheduleDefinition(
        name=f"{job_name}_schedule",
        job_name=job_name,
        cron_schedule=cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Drift report, signals and gate of every model (MESOPS_MONITORING_CRON).",
    )


def build_feedback_sensor(job_name: str, interval_s: int, minimum: int) -> dg.SensorDefinition:
    """Request a monitor run once ``minimum`` new decisions plus outcomes arrived since the last one it asked for."""

    @dg.sensor(
        name="feedback_volume_sensor",
        job_name=job_name,
        minimum_interval_seconds=interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Starts the {job_name} job when at least {minimum} planner decisions and outcomes arrived "
        "since its last request (MESOPS_MONITORING_FEEDBACK_MIN).",
    )
    def feedback_volume_sensor(
        context: dg.SensorEvaluationContext, platform: PlatformResource
    ) -> dg.SensorResult:
        url = platform.settings().resolved_database_url
        if not inspect(database.get_engine(url)).has_table(Outcome.__tablename__):
            return dg.SensorResult(
                skip_reason="the platform database has no serving tables yet (mesops db upgrade)"
            )
        mark = FeedbackMark.from_cursor(context.cursor)
        volume = feedback_since(url, mark)
        counted = f"{volume.decisions} decisions and {volume.outcomes} outcomes since the last request"
        if volume.total < minimum:
            return dg.SensorResult(skip_reason=f"{counted}; a monitor run needs {minimum}")
        new = volume.mark
        run_key = f"feedback-{new.outcome_id}-{new.decided_at.isoformat() if new.decided_at else 'none'}"
        request = dg.RunRequest(
            run_key=run_key,
            tags={"mesops/trigger": "feedback", "mesops/feedback": str(volume.total)},
        )
        return dg.SensorResult(run_requests=[request], cursor=new.cursor())

    return feedback_volume_sensor
