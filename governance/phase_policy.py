"""Phase policies: per model family, a versioned YAML file saying how a challenger is rolled out.

For each phase (shadow, approval, autonomous) it states what share of the entities (machines, orders, meters)
the challenger answers and which recommendation classes are low-risk enough to apply without a planner. The
gates (advance / hold / roll back conditions) extend the same file. An invalid file is refused at load with
the field and the rule named.

The ``gates`` section says, for each phase, when the challenger advances and when it is rolled back: a list
of ``advance`` conditions (all must pass) and a list of ``keep`` conditions (one failing rolls it back). Each
condition names a signal (see :data:`SIGNALS`), a bound (``at_least`` / ``at_most``) and the sample it needs
(``min_sample``): below it the condition is pending, never a pass. From ``autonomous`` an advance makes the
challenger champion. The ``champion`` gate has only ``keep`` conditions: failing one restores the previous
champion.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from governance.registry import MODEL_PREFIX


class Phase(StrEnum):
    """The rollout phases of a challenger, in the order it moves through them."""

    SHADOW = "shadow"
    APPROVAL = "approval"
    AUTONOMOUS = "autonomous"


class PolicyError(ValueError):
    """A phase policy file that cannot be used: which file, which field, which rule."""


class ShadowPhase(BaseModel):
    """Shadow: the challenger never answers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""


class ApprovalPhase(BaseModel):
    """Approval: the challenger answers a sticky share of entities; its recommendations wait for a planner."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    challenger_share: float = Field(gt=0, le=1, description="Share of entities the challenger answers.")


class AutonomousPhase(ApprovalPhase):
    """Autonomous: as approval, but recommendations of the low-risk classes are applied without a planner."""

    low_risk_classes: tuple[str, ...] = Field(
        min_length=1, description="Recommendation classes applied without a planner in this phase."
    )


class Phases(BaseModel):
    """The three phases of a policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    shadow: ShadowPhase
    approval: ApprovalPhase
    autonomous: AutonomousPhase


# What a gate condition can measure; governance/signals.py computes each (value and sample size).
SIGNALS: dict[str, str] = {
    "predictions": "outputs of the version in the phase window (answered or shadow-scored)",
    "days_in_phase": "days since the challenger entered its phase (or the champion its alias)",
    "realized.pr_auc": "failure: PR-AUC on predictions whose outcome arrived (sample: failures seen)",
    "realized.pr_auc.gain": "failure: PR-AUC of the version minus the champion's, same requests",
    "realized.pr_auc.ratio": "failure: PR-AUC of the version over the champion's, same requests (a weak "
    "forecaster's PR-AUC sits near the failure rate, where a difference says little and a ratio says how much "
    "of the champion's skill is kept)",
    "realized.recall": "failure: recall at the decision threshold (sample: failures seen)",
    "realized.recall.gain": "failure: recall of the version minus the champion's, same requests",
    "realized.brier": "failure: Brier score (calibration; lower is better)",
    "realized.brier.gain": "failure: champion's Brier score minus the version's (positive: better calibrated)",
    "realized.mae": "yield: MAE of the yield fraction; consumption: MAE of the day's kWh",
    "realized.mae.gain": "relative MAE improvement over the champion on the same requests (0.1: 10 % lower)",
    "realized.mae_vs_naive": "consumption: MAE over the seasonal naive's (same meter, 7 days earlier)",
    "realized.coverage": "consumption: share of actual days inside the forecast interval",
    "acceptance.rate": "accepted / decided recommendations of the version in the phase",
    "acceptance.lower_bound": "Wilson 95 % lower bound of the acceptance rate",
    "drift.share": "share of drifted features (Evidently) in the window vs the training reference",
    "drift.prediction": "1 when the version's predictions drifted from the reference's, else 0",
    "drift.severity": "the worst feature's drift distance over its drift threshold (5: it moved five times as "
    "far as Evidently calls drift; one broken or recalibrated sensor shows here before the share moves)",
    "latency.p99_ms": "99th percentile of request latency of the model in the window (ms)",
    "errors.rate": "share of the version's scorings that failed",
    "shadow.disagreement": "share of requests where champion and version would have recommended differently",
}


class Condition(BaseModel):
    """One gate condition: a signal, its bound, and the sample below which it is pending."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    signal: Literal[tuple(SIGNALS)]  # type: ignore[valid-type]
    at_least: float | None = None
    at_most: float | None = None
    min_sample: int = Field(default=0, ge=0, description="Below this sample size the condition is pending.")

    @model_validator(mode="after")
    def _one_bound(self) -> Condition:
        if (self.at_least is None) == (self.at_most is None):
            raise ValueError(f"{self.signal}: give exactly one of at_least or at_most")
        return self

    @property
    def threshold(self) -> float:
        return self.at_least if self.at_least is not None else self.at_most  # type: ignore[return-value]

    @property
    def rule(self) -> str:
        """'acceptance.lower_bound >= 0.6': the condition as a reviewer reads it."""
        op = ">=" if self.at_least is not None else "<="
        return f"{self.signal} {op} {self.threshold:g}"


class PhaseGate(BaseModel):
    """When a challenger in this phase advances (every advance condition passes) or rolls back (a keep fails)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    advance: tuple[Condition, ...] = Field(min_length=1)
    keep: tuple[Condition, ...] = ()


class ChampionGate(BaseModel):
    """While there is no challenger: the champion keeps its alias while every keep condition holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keep: tuple[Condition, ...] = Field(min_length=1)


class Gates(BaseModel):
    """The gate of each phase, and of the champion alone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    shadow: PhaseGate
    approval: PhaseGate
    autonomous: PhaseGate
    champion: ChampionGate


class PhasePolicy(BaseModel):
    """The rollout policy of one registered model, as written in its YAML file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(pattern=f"^{MODEL_PREFIX}[a-z_]+$")
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    phases: Phases
    gates: Gates
    sha256: str = Field(default="", description="sha256 of the file it was read from (set at load).")

    def challenger_share(self, phase: Phase) -> float:
        """The share of entities the challenger answers in a phase (0 in shadow)."""
        if phase == Phase.SHADOW:
            return 0.0
        return getattr(self.phases, phase.value).challenger_share

    def is_low_risk(self, action_class: str) -> bool:
        """True when the autonomous phase applies this recommendation class without a planner."""
        return action_class in self.phases.autonomous.low_risk_classes

    def gate(self, phase: Phase | None) -> PhaseGate | ChampionGate:
        """The gate of a challenger's phase, or the champion's gate (phase None: no challenger)."""
        return self.gates.champion if phase is None else getattr(self.gates, phase.value)

    @property
    def ref(self) -> str:
        """'mesops-failure@1.0.0': which policy, which version."""
        return f"{self.model}@{self.version}"


def load_policy(path: Path) -> PhasePolicy:
    """Read and validate one policy file; PolicyError names the file, the field and the rule."""
    raw = path.read_bytes()
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise PolicyError(f"{path.name}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise PolicyError(f"{path.name}: expected a mapping at the top level")
    try:
        policy = PhasePolicy.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in err.errors()
        )
        raise PolicyError(f"{path.name}: {problems}") from None
    return policy.model_copy(update={"sha256": hashlib.sha256(raw).hexdigest()})


def load_policies(folder: Path) -> dict[str, PhasePolicy]:
    """Every policy in a folder by model name; two files for one model is an error."""
    policies: dict[str, PhasePolicy] = {}
    for path in sorted(folder.glob("*.yaml")):
        policy = load_policy(path)
        if policy.model in policies:
            raise PolicyError(f"{path.name}: a second policy for {policy.model}")
        policies[policy.model] = policy
    return policies
