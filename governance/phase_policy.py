"""Phase policies: per model family, a versioned YAML file saying how a challenger is rolled out.

For each phase (shadow, approval, autonomous) it states what share of the entities (machines, orders, meters)
the challenger answers and which recommendation classes are low-risk enough to apply without a planner. The
gates (advance / hold / roll back conditions) extend the same file. An invalid file is refused at load with
the field and the rule named.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

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


class PhasePolicy(BaseModel):
    """The rollout policy of one registered model, as written in its YAML file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(pattern=f"^{MODEL_PREFIX}[a-z_]+$")
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    phases: Phases
    sha256: str = Field(default="", description="sha256 of the file it was read from (set at load).")

    def challenger_share(self, phase: Phase) -> float:
        """The share of entities the challenger answers in a phase (0 in shadow)."""
        if phase == Phase.SHADOW:
            return 0.0
        return getattr(self.phases, phase.value).challenger_share

    def is_low_risk(self, action_class: str) -> bool:
        """True when the autonomous phase applies this recommendation class without a planner."""
        return action_class in self.phases.autonomous.low_risk_classes

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
