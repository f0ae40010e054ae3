"""Request and response types of the served API (what MES integrations and planners send and get back).

Every field is typed and bounded: an invalid request is a 400 naming each bad field and the rule it broke.
Entities are plant assets (machines, orders, meters); no request or response field holds personal data.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from governance.recommendations import Decision, ReasonCode, RecommendationView

EntityId = Annotated[str, Field(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]*$")]
CorrelationId = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")]
FeatureValue = float | str | None
EARLIEST, LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


def _plant_time(moment: datetime) -> datetime:
    """A time a plant record can carry: 2000-01-01 to 2100-01-01 UTC (far dates are typos, not data)."""
    if not EARLIEST <= moment < LATEST:
        raise ValueError("must lie between 2000-01-01 and 2100-01-01 UTC")
    return moment


def _plant_day(day: date) -> date:
    if not EARLIEST.date() <= day < LATEST.date():
        raise ValueError("must lie between 2000-01-01 and 2100-01-01")
    return day


PlantTime = Annotated[AwareDatetime, AfterValidator(_plant_time)]
PlantDay = Annotated[date, AfterValidator(_plant_day)]
Task = Literal["failure", "yield", "consumption"]
MAX_BATCH = 500


class Strict(BaseModel):
    """Unknown fields are errors, not silently ignored: a typo in an integration must be seen."""

    model_config = ConfigDict(extra="forbid")


# --- requests ----------------------------------------------------------------------------------------
class FailureRiskRequest(Strict):
    """Failure risk of one machine within the next shift."""

    machine_id: EntityId = Field(description="The machine, e.g. 'M-07'.")
    correlation_id: CorrelationId | None = Field(
        default=None, description="The MES event id this request answers (default: machine and time)."
    )
    features: dict[str, FeatureValue] | None = Field(
        default=None,
        max_length=200,
        description="Feature values to score instead of the machine's latest sensor context (every feature "
        "of the model, by name).",
    )


class OrderHeader(Strict):
    """A production order as released by the MES (for orders mesops has not ingested yet)."""

    product_id: EntityId
    line_id: EntityId
    planned_qty: float = Field(gt=0, le=1_000_000)
    shift: Literal["A", "B", "C"]
    released_at: PlantTime


class YieldRequest(Strict):
    """Expected yield of one released production order."""

    order_id: EntityId = Field(description="The production order, e.g. 'PO-004711'.")
    correlation_id: CorrelationId | None = Field(default=None, description="Default: the order id.")
    order: OrderHeader | None = Field(
        default=None, description="The order's header, when mesops has not ingested the order yet."
    )


class ConsumptionRequest(Strict):
    """Energy forecast of one meter for one day, with an interval."""

    meter_id: EntityId = Field(description="The energy meter, e.g. 'E-L1'.")
    day: PlantDay | None = Field(
        default=None, description="Day to forecast; default: the day after the last reading."
    )
    correlation_id: CorrelationId | None = Field(default=None, description="Default: meter and day.")


class FailureRiskBatch(Strict):
    """Several failure-risk requests in one call."""

    requests: list[FailureRiskRequest] = Field(min_length=1, max_length=MAX_BATCH)


class YieldBatch(Strict):
    """Several yield requests in one call."""

    requests: list[YieldRequest] = Field(min_length=1, max_length=MAX_BATCH)


class ConsumptionBatch(Strict):
    """Several consumption requests in one call."""

    requests: list[ConsumptionRequest] = Field(min_length=1, max_length=MAX_BATCH)


class FeedbackRequest(Strict):
    """A planner's decision on a recommendation."""

    recommendation_id: Annotated[str, Field(min_length=1, max_length=40)]
    decision: Decision
    reason_code: ReasonCode
    modified_value: float | None = Field(
        default=None, description="The planner's value instead of the recommended one (decision 'modify')."
    )


class OutcomeRequest(Strict):
    """What really happened, for the prediction with this correlation id."""

    model: Task
    correlation_id: CorrelationId
    entity_id: EntityId
    actual: float = Field(
        description="failure: 1 if the machine failed within the horizon else 0; yield: good quantity; "
        "consumption: kWh of the day."
    )
    observed_at: PlantTime


# --- responses ---------------------------------------------------------------------------------------
class RecommendationOut(BaseModel):
    """The recommendation made from a prediction."""

    recommendation_id: str
    action_class: str
    text: str
    status: str


class Answer(BaseModel):
    """What every prediction response carries besides the prediction itself."""

    request_id: str
    correlation_id: str
    model: str
    version: str
    phase: str = Field(description="'none' without a challenger, else shadow, approval or autonomous.")
    answered_by: Literal["champion", "challenger"]
    recommendation: RecommendationOut


class FailureRiskResponse(Answer):
    """Failure risk of a machine within the horizon."""

    machine_id: str
    probability: float
    alarm: bool
    threshold: float
    forecast_at: datetime
    horizon_hours: float


class YieldResponse(Answer):
    """Expected yield of an order."""

    order_id: str
    yield_fraction: float
    expected_good_qty: float
    planned_qty: float


class SlotForecast(BaseModel):
    """One quarter-hour of a consumption forecast (ts = end of the interval)."""

    ts: datetime
    forecast: float
    lower: float
    upper: float


class ConsumptionResponse(Answer):
    """Energy forecast of a meter for a day: total and quarter-hours, with intervals."""

    meter_id: str
    day: date
    total_kwh: float
    lower_kwh: float
    upper_kwh: float
    coverage: float
    slots: list[SlotForecast]


class FailureRiskBatchResponse(BaseModel):
    results: list[FailureRiskResponse]


class YieldBatchResponse(BaseModel):
    results: list[YieldResponse]


class ConsumptionBatchResponse(BaseModel):
    results: list[ConsumptionResponse]


class FeedbackResponse(BaseModel):
    """The recommendation after the decision; recorded is False when the same decision was already made."""

    recommendation: RecommendationView
    recorded: bool


class OutcomeResponse(BaseModel):
    """The outcome as stored; recorded is False when the same outcome was already posted."""

    model: str
    correlation_id: str
    recorded: bool
    predictions: int = Field(description="Logged predictions this outcome resolves.")


class ErrorBody(BaseModel):
    """Every 4xx/5xx body: a code, a sentence, and per field what rule it broke."""

    error: str
    detail: str | list[dict[str, str]]
