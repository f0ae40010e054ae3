"""MES events the bridge consumes: one versioned schema per source system and event type.

Every event is an envelope ``{"source", "event_type", "version", "event_id", "occurred_at", "data"}``; ``data``
keeps the source system's own field names (those of the Opcenter OData and Plex REST adapters, see
``data_contracts/contracts``). Parsing returns a :class:`MesEvent` in canonical vocabulary, or raises
:class:`EventError` whose reasons each name the field and the rule (``data.PlannedQuantity: greater_than: ...``).

Vendor fields mesops does not read (``CreatedBy``, ``OperatorNId``, comments) are dropped here, so personal data
in an event never reaches the database; the envelope itself is strict (a misspelt envelope key is an error).
"""

from __future__ import annotations

import json
from abc import abstractmethod
from datetime import datetime
from typing import Any, ClassVar, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from serving.errors import field_problems
from serving.schemas import CorrelationId, EntityId, OrderHeader, PlantTime

Source = Literal["opcenter", "plex"]
Kind = Literal["order_released", "machine_status", "sensor_update", "operation_completed", "order_closed"]
Quantity = float  # bounds are on the fields: a quantity is never negative and never absurd
MAX_QTY = 1_000_000


class EventError(ValueError):
    """An event that breaks its contract; ``reasons`` name each field and rule (at least one)."""

    def __init__(self, reasons: list[str], envelope: dict[str, Any] | None = None) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons
        self.envelope = envelope or {}


class Envelope(BaseModel):
    """What every event carries, whatever its source: who sent it, which schema, its id and time."""

    model_config = ConfigDict(extra="forbid")

    source: Source
    event_type: str = Field(min_length=1, max_length=60)
    version: int = Field(ge=1)
    event_id: CorrelationId = Field(description="The MES transaction id: the idempotency key of the bridge.")
    occurred_at: PlantTime
    data: dict[str, Any]


class MesEvent(BaseModel):
    """A valid event in canonical vocabulary (what the bridge acts on)."""

    model_config = ConfigDict(frozen=True)

    source: Source
    event_type: str
    version: int
    event_id: str
    occurred_at: datetime
    kind: Kind
    order_id: str | None = None
    order: OrderHeader | None = None
    machine_id: str | None = None
    state: str | None = None
    good_qty: float | None = None
    observed_at: datetime | None = None


class _Data(BaseModel):
    """The ``data`` of one event type; subclasses map their vendor fields onto a :class:`MesEvent`."""

    model_config = ConfigDict(extra="ignore", populate_by_name=False)
    kind: ClassVar[Kind]

    @abstractmethod
    def canonical(self) -> dict[str, Any]:
        """The event's fields in canonical vocabulary (MesEvent keyword arguments)."""


# --- Opcenter (OData entity vocabulary: ProductionOrders, EquipmentEvents, Operations) ------------------
class OpcenterOrderReleased(_Data):
    """ProductionOrder released: score its yield."""

    kind: ClassVar[Kind] = "order_released"
    NId: EntityId
    MaterialNId: EntityId
    ProductionLineNId: EntityId
    PlannedQuantity: Quantity = Field(gt=0, le=MAX_QTY)
    Shift: Literal["A", "B", "C"]
    ReleasedOn: PlantTime

    def canonical(self) -> dict[str, Any]:
        header = OrderHeader(
            product_id=self.MaterialNId,
            line_id=self.ProductionLineNId,
            planned_qty=self.PlannedQuantity,
            shift=self.Shift,
            released_at=self.ReleasedOn,
        )
        return {"order_id": self.NId, "order": header}


class OpcenterEquipmentStatus(_Data):
    """EquipmentEvent (state change of a machine): score its failure risk."""

    kind: ClassVar[Kind] = "machine_status"
    EquipmentNId: EntityId
    State: Literal["running", "idle", "down", "maintenance"]
    StartTime: PlantTime

    def canonical(self) -> dict[str, Any]:
        return {"machine_id": self.EquipmentNId, "state": self.State, "observed_at": self.StartTime}


class OpcenterSensorUpdate(_Data):
    """Equipment sensor update: score the machine's failure risk."""

    kind: ClassVar[Kind] = "sensor_update"
    EquipmentNId: EntityId
    Timestamp: PlantTime

    def canonical(self) -> dict[str, Any]:
        return {"machine_id": self.EquipmentNId, "observed_at": self.Timestamp}


class OpcenterOperationCompleted(_Data):
    """Operation completed: recorded (the order's outcome comes with its closing)."""

    kind: ClassVar[Kind] = "operation_completed"
    NId: EntityId
    WorkOrderNId: EntityId
    EquipmentNId: EntityId
    QuantityGood: Quantity = Field(ge=0, le=MAX_QTY)
    ActualEndTime: PlantTime

    def canonical(self) -> dict[str, Any]:
        return {
            "order_id": self.WorkOrderNId,
            "machine_id": self.EquipmentNId,
            "good_qty": self.QuantityGood,
            "observed_at": self.ActualEndTime,
        }


class OpcenterOrderClosed(_Data):
    """ProductionOrder closed: its good quantity is the yield forecast's outcome."""

    kind: ClassVar[Kind] = "order_closed"
    NId: EntityId
    ProducedQuantity: Quantity = Field(ge=0, le=MAX_QTY)
    ActualEndTime: PlantTime

    def canonical(self) -> dict[str, Any]:
        return {"order_id": self.NId, "good_qty": self.ProducedQuantity, "observed_at": self.ActualEndTime}


# --- Plex (REST vocabulary: ProdOrder, MachineStatus, ProdOrderRouting) -------------------------------
class PlexJobReleased(_Data):
    """ProdOrder (job) released: score its yield."""

    kind: ClassVar[Kind] = "order_released"
    jobNo: EntityId
    partNo: EntityId
    lineCode: EntityId
    quantity: Quantity = Field(gt=0, le=MAX_QTY)
    shift: Literal["A", "B", "C"]
    releaseDate: PlantTime

    def canonical(self) -> dict[str, Any]:
        header = OrderHeader(
            product_id=self.partNo,
            line_id=self.lineCode,
            planned_qty=self.quantity,
            shift=self.shift,
            released_at=self.releaseDate,
        )
        return {"order_id": self.jobNo, "order": header}


class PlexMachineStatus(_Data):
    """MachineStatus of a workcenter changed: score its failure risk."""

    kind: ClassVar[Kind] = "machine_status"
    workcenterCode: EntityId
    status: Literal["running", "idle", "down", "maintenance"]
    startTime: PlantTime

    def canonical(self) -> dict[str, Any]:
        return {"machine_id": self.workcenterCode, "state": self.status, "observed_at": self.startTime}


class PlexSensorUpdate(_Data):
    """Workcenter sensor update: score its failure risk."""

    kind: ClassVar[Kind] = "sensor_update"
    workcenterCode: EntityId
    timestamp: PlantTime

    def canonical(self) -> dict[str, Any]:
        return {"machine_id": self.workcenterCode, "observed_at": self.timestamp}


class PlexOperationCompleted(_Data):
    """ProdOrderRouting operation completed: recorded."""

    kind: ClassVar[Kind] = "operation_completed"
    jobOpKey: EntityId
    jobNo: EntityId
    workcenterCode: EntityId
    quantityGood: Quantity = Field(ge=0, le=MAX_QTY)
    endDate: PlantTime

    def canonical(self) -> dict[str, Any]:
        return {
            "order_id": self.jobNo,
            "machine_id": self.workcenterCode,
            "good_qty": self.quantityGood,
            "observed_at": self.endDate,
        }


class PlexJobClosed(_Data):
    """ProdOrder (job) closed: its good quantity is the yield forecast's outcome."""

    kind: ClassVar[Kind] = "order_closed"
    jobNo: EntityId
    goodQuantity: Quantity = Field(ge=0, le=MAX_QTY)
    completeDate: PlantTime

    def canonical(self) -> dict[str, Any]:
        return {"order_id": self.jobNo, "good_qty": self.goodQuantity, "observed_at": self.completeDate}


# (source, event_type, version) -> the schema of its data. A new version is a new entry; old ones stay.
SCHEMAS: dict[tuple[str, str, int], type[_Data]] = {
    ("opcenter", "ProductionOrderReleased", 1): OpcenterOrderReleased,
    ("opcenter", "EquipmentStatusChanged", 1): OpcenterEquipmentStatus,
    ("opcenter", "EquipmentSensorUpdate", 1): OpcenterSensorUpdate,
    ("opcenter", "OperationCompleted", 1): OpcenterOperationCompleted,
    ("opcenter", "ProductionOrderClosed", 1): OpcenterOrderClosed,
    ("plex", "JobReleased", 1): PlexJobReleased,
    ("plex", "MachineStatusChanged", 1): PlexMachineStatus,
    ("plex", "SensorUpdate", 1): PlexSensorUpdate,
    ("plex", "OperationCompleted", 1): PlexOperationCompleted,
    ("plex", "JobClosed", 1): PlexJobClosed,
}


def parse_event(body: bytes | str) -> MesEvent:
    """Validate a raw event against its envelope and its (source, type, version) schema."""
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise EventError([f"(body): json: not a JSON document ({err})"]) from None
    if not isinstance(raw, dict):
        raise EventError([f"(body): type: must be a JSON object, got {type(raw).__name__}"])
    known = {k: raw.get(k) for k in ("event_id", "source", "event_type") if isinstance(raw.get(k), str)}
    try:
        envelope = Envelope.model_validate(raw)
    except pydantic.ValidationError as err:
        raise EventError(_reasons(err.errors()), known) from None
    schema = SCHEMAS.get((envelope.source, envelope.event_type, envelope.version))
    if schema is None:
        supported = sorted(f"{t} v{v}" for s, t, v in SCHEMAS if s == envelope.source)
        raise EventError(
            [
                f"event_type: unknown: {envelope.source} event {envelope.event_type!r} version "
                f"{envelope.version} has no contract (supported: {', '.join(supported)})"
            ],
            known,
        )
    try:
        data = schema.model_validate(envelope.data)
    except pydantic.ValidationError as err:
        raise EventError(_reasons(err.errors(), prefix="data"), known) from None
    return MesEvent(
        source=envelope.source,
        event_type=envelope.event_type,
        version=envelope.version,
        event_id=envelope.event_id,
        occurred_at=envelope.occurred_at,
        kind=schema.kind,
        **data.canonical(),
    )


def _reasons(errors: list[Any], prefix: str | None = None) -> list[str]:
    problems = field_problems(errors)
    return [f"{prefix + '.' if prefix else ''}{p['field']}: {p['rule']}: {p['message']}" for p in problems]
