"""Configuration of the seeded plant simulator: plant size, time window, noise, failure physics and defects."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

SHIFT_MINUTES = 480  # three 8-hour shifts: A 06-14, B 14-22, C 22-06


def default_contracts_dir() -> Path:
    """The data contracts shipped with mesops (``data_contracts/contracts``)."""
    return Path(__file__).resolve().parents[2] / "data_contracts" / "contracts"


class DefectKind(StrEnum):
    """Kinds of contract defects the simulator can plant."""

    NULL = "null"
    OUT_OF_RANGE = "out_of_range"
    UNKNOWN_MACHINE = "unknown_machine"
    DUPLICATE_KEY = "duplicate_key"
    BAD_TIMESTAMP = "bad_timestamp"
    WRONG_TYPE = "wrong_type"


class PhysicsParams(BaseModel):
    """Failure physics in the spirit of AI4I 2020: every threshold and hazard of the machine model.

    Hazards are per running minute; the simulator integrates them over each sensor interval.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tool_change_mean_min: float = Field(
        default=195.0, gt=0, description="Mean tool wear at a planned tool change."
    )
    tool_change_sd_min: float = Field(
        default=22.0, ge=0, description="Spread of the tool wear at a tool change."
    )
    tool_wear_onset_min: float = Field(
        default=200.0, gt=0, description="Tool wear where tool-wear failures begin."
    )
    tool_wear_hazard: float = Field(
        default=2.0e-3,
        ge=0,
        description="Hazard per minute at 40 min beyond the tool-wear onset (grows squared).",
    )
    overstrain_onset_minnm: float = Field(
        default=9_500.0, gt=0, description="Tool wear x torque [min Nm] where overstrain failures begin."
    )
    overstrain_hazard: float = Field(
        default=1.5e-3, ge=0, description="Hazard per minute 2,000 min Nm beyond the overstrain onset."
    )
    power_band_w: tuple[float, float] = Field(
        default=(3_500.0, 9_000.0), description="Mechanical power band [W]; outside it power failures occur."
    )
    power_hazard: float = Field(default=0.7e-3, ge=0, description="Hazard per minute outside the power band.")
    heat_min_delta_k: float = Field(
        default=8.6, gt=0, description="Process-air difference [K] under which heat dissipation fails..."
    )
    heat_max_speed_rpm: float = Field(
        default=1_380.0, gt=0, description="...when the speed is also below this."
    )
    heat_hazard: float = Field(
        default=1.2e-3, ge=0, description="Hazard per minute in heat-dissipation danger."
    )
    degradation_rate: float = Field(
        default=1.0e-4, ge=0, description="Mean growth of the hidden degradation state per running minute."
    )
    degradation_hazard: float = Field(
        default=3.0e-4, ge=0, description="Hazard per minute at degradation 1 (grows with the fourth power)."
    )
    random_hazard: float = Field(
        default=1.0e-5, ge=0, description="Hazard per running minute of random failures."
    )
    failure_scale: float = Field(default=1.0, gt=0, description="Multiplies every hazard (calibration knob).")
    degradation_kept_after_repair: float = Field(
        default=0.25, ge=0, le=1, description="Share of the degradation state left after a repair."
    )
    idle_block_probability: float = Field(
        default=0.06,
        ge=0,
        le=1,
        description="Chance that a worked machine-shift has an unplanned idle block.",
    )


class SimulationConfig(BaseModel):
    """What plant to simulate and for how long; a fixed seed gives byte-identical output."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(default=7, ge=0, description="Seed of every random draw.")
    start: date = Field(default=date(2025, 1, 6), description="First production day (shift A starts 06:00).")
    days: int = Field(default=28, ge=1, le=3660, description="Number of production days simulated.")
    lines: int = Field(default=2, ge=1, le=99, description="Production lines L1, L2, ...")
    machines_per_line: int = Field(default=6, ge=1, le=40, description="Machines on each line.")
    orders_per_line_per_day: int = Field(
        default=9, ge=0, le=200, description="Orders released per line per day."
    )
    products: int = Field(default=8, ge=1, le=899, description="Products P-101, P-102, ...")
    materials: int = Field(default=6, ge=1, le=999, description="Raw materials RM-001, RM-002, ...")
    sensor_interval_min: int = Field(
        default=10,
        ge=1,
        le=60,
        description="Minutes between sensor readings; must divide the 480-minute shift.",
    )
    employees: int = Field(default=40, ge=1, le=400, description="Size of the employee roster.")
    notes_per_shift: int = Field(default=1, ge=0, le=5, description="Handover notes per line and shift.")
    andon_comment_probability: float = Field(
        default=0.8, ge=0, le=1, description="Share of down events that carry an Andon comment."
    )
    remark_probability: float = Field(
        default=0.3, ge=0, le=1, description="Share of inspections with an inspector's remark."
    )
    defect_rate: float = Field(
        default=0.0, ge=0, le=0.5, description="Share of rows given one contract defect."
    )
    defect_kinds: tuple[DefectKind, ...] = Field(
        default=tuple(DefectKind), min_length=1, description="Which defect kinds to plant."
    )
    plant_id: str = Field(default="PLANT-01", min_length=1, description="Plant id written to every manifest.")
    plant_domain: str = Field(
        default="plant01.example.com", pattern=r"^[a-z0-9.-]+\.[a-z]{2,}$", description="E-mail domain."
    )
    physics: PhysicsParams = Field(default_factory=PhysicsParams, description="Failure physics.")

    @model_validator(mode="after")
    def _consistent(self) -> SimulationConfig:
        if SHIFT_MINUTES % self.sensor_interval_min:
            raise ValueError(
                f"sensor_interval_min: must divide the {SHIFT_MINUTES}-minute shift, got {self.sensor_interval_min}"
            )
        if self.lines * self.machines_per_line > 9999:
            raise ValueError("lines x machines_per_line: at most 9999 machines (ids M-01 .. M-9999)")
        if self.employees < self.min_employees:
            raise ValueError(
                f"employees: {self.lines} line(s) need at least {self.min_employees} "
                f"(3 operators per line, planners, inspectors, a supervisor per line), got {self.employees}"
            )
        if len(set(self.defect_kinds)) != len(self.defect_kinds):
            raise ValueError("defect_kinds: each kind at most once")
        return self

    @property
    def min_employees(self) -> int:
        """Smallest roster that staffs every line and shift."""
        return 3 * self.lines + 2 * max(2, (self.lines + 1) // 2) + self.lines

    @property
    def n_planners(self) -> int:
        return max(2, (self.lines + 1) // 2)

    @property
    def n_inspectors(self) -> int:
        return max(2, (self.lines + 1) // 2)
